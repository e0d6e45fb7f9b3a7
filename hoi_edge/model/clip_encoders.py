"""CLIP through open_clip: the image encoder (global + patch tokens) and a text encoder
that accepts prompt *embeddings*, so learnable [PREFIX]/[CONJUN] tokens can be spliced in.

The image tower is the CLIP model's own ViT, or another tower (``ClipConfig.image_tower``): an open_clip ViT
(ViT-B-32, a ViT at a lower input size with resampled position embeddings) or a timm tower (MobileCLIP's
FastViT), for edge students distilled into the text tower's joint space (:mod:`train.student`).
"""

from __future__ import annotations

import copy
import os
import zipfile
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_state_dict
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

from hoi_edge.core.errors import WeightsError
from hoi_edge.model.config import ClipConfig, ImageTowerConfig
from hoi_edge.model.ops import l2_normalize


def build_clip(cfg: ClipConfig) -> open_clip.CLIP:
    """Create the CLIP model; ``pretrained`` is an open_clip tag (downloads) or a local file. With an
    ``image_tower`` its ``visual`` is that tower (built by :func:`build_image_tower`)."""
    model = _build_own_clip(cfg)
    if cfg.image_tower.replaces_own:
        model.visual = build_image_tower(cfg.image_tower, int(model.text_projection.shape[-1]))
    return model.eval()


def _build_own_clip(cfg: ClipConfig) -> open_clip.CLIP:
    if cfg.architecture is not None:
        arch = dict(cfg.architecture, quick_gelu=bool(cfg.quick_gelu)) if cfg.quick_gelu is not None \
            else cfg.architecture
        model = open_clip.CLIP(**arch)
        if cfg.pretrained:
            load_clip_file(model, cfg.pretrained)
        return model.eval()
    local = bool(cfg.pretrained) and _looks_like_path(cfg.pretrained)
    try:
        model = open_clip.create_model(cfg.model_name, pretrained=None if local else (cfg.pretrained or None),
                                       force_quick_gelu=quick_gelu(cfg))
    except RuntimeError as exc:
        raise WeightsError(
            f"cannot load CLIP '{cfg.model_name}' weights '{cfg.pretrained}': {exc}. "
            "Offline? pass a local open_clip weights file with --clip-weights PATH."
        ) from exc
    if not isinstance(model, open_clip.CLIP) or not isinstance(model.visual, open_clip.transformer.VisionTransformer):
        raise WeightsError(f"CLIP model '{cfg.model_name}' must be an open_clip ViT with the built-in text tower")
    if local:
        load_clip_file(model, cfg.pretrained)
    return model.eval()


def build_image_tower(tower: ImageTowerConfig, embed_dim: int) -> nn.Module:
    """The open_clip image tower ``tower`` names (a ViT or a timm tower), its output width checked against the
    text tower's ``embed_dim`` and its input normalisation set from the config (else the tag's)."""
    local = bool(tower.pretrained) and _looks_like_path(tower.pretrained)
    if tower.architecture is not None:
        visual = _inline_tower(tower)
        tag_cfg: dict = {}
    else:
        try:
            model = open_clip.create_model(tower.model_name, pretrained=None if local else (tower.pretrained or None),
                                           force_quick_gelu=quick_gelu(tower),
                                           force_image_size=tower.image_size)
        except RuntimeError as exc:
            raise WeightsError(f"cannot load the image tower '{tower.model_name}' weights '{tower.pretrained}': "
                               f"{exc}. Offline? pass a local open_clip weights file") from exc
        visual = model.visual
        tag_cfg = dict(visual.preprocess_cfg)
    if not isinstance(visual, (open_clip.transformer.VisionTransformer, open_clip.timm_model.TimmModel)):
        raise WeightsError(f"image tower '{tower.model_name}' is a {type(visual).__name__}; hoi-edge takes open_clip "
                           "ViTs and timm towers")
    if tower.pretrained and (local or tower.architecture is not None):
        _load_tower_file(visual, tower.pretrained)
    width = _tower_width(visual)
    if width != embed_dim:
        raise WeightsError(f"image tower '{tower.model_name or 'inline'}' outputs {width}-d embeddings but the text "
                           f"tower's joint space is {embed_dim}-d")
    default_mean, default_std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    visual.preprocess_cfg = {**tag_cfg, "mean": tuple(tower.mean or tag_cfg.get("mean", default_mean)),
                             "std": tuple(tower.std or tag_cfg.get("std", default_std))}
    return visual.eval()


def _inline_tower(tower: ImageTowerConfig) -> nn.Module:
    """A tower from an inline open_clip config; ``vision_cfg['timm_kwargs']`` re-sizes a timm trunk (tiny towers)."""
    from open_clip.model import _build_vision_tower

    arch = copy.deepcopy(tower.architecture)
    vision = dict(arch["vision_cfg"])
    timm_kwargs = vision.pop("timm_kwargs", None)
    if tower.image_size:
        vision["image_size"] = tower.image_size
    visual = _build_vision_tower(arch["embed_dim"], vision, quick_gelu=bool(tower.quick_gelu))
    if timm_kwargs:
        import timm

        visual.trunk = timm.create_model(vision["timm_model_name"], num_classes=arch["embed_dim"],
                                         global_pool=vision.get("timm_pool", "avg"), **timm_kwargs)
    return visual


def _tower_width(visual: nn.Module) -> int:
    """The joint-space width a tower outputs (its projection's, or its timm classifier's)."""
    if isinstance(visual, open_clip.timm_model.TimmModel):
        return int(_timm_projections(visual)[-1].out_features)
    return int(visual.proj.shape[-1]) if visual.proj is not None else int(visual.output_dim)


def _load_tower_file(visual: nn.Module, path: str) -> None:
    """A tower's weights from a file: a full open_clip CLIP state dict (its ``visual.*`` keys) or a tower's own;
    ViT position embeddings are resampled to the tower's grid (as open_clip does for tags)."""
    from open_clip.model import resize_pos_embed

    state = read_clip_state(path)
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    holder = {"visual.positional_embedding": state["positional_embedding"]} if "positional_embedding" in state else {}
    if holder:
        resize_pos_embed(holder, nn.ModuleDict({"visual": visual}))
        state["positional_embedding"] = holder["visual.positional_embedding"]
    try:
        visual.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"image tower weights {path} do not fit the configured tower: {exc}") from exc


def quick_gelu(cfg: ClipConfig | ImageTowerConfig) -> bool:
    """The configured activation, else the one open_clip registers for the pretrained tag (OpenAI: QuickGELU)."""
    if cfg.quick_gelu is not None:
        return cfg.quick_gelu
    if cfg.pretrained and cfg.model_name and not _looks_like_path(cfg.pretrained):
        return bool(open_clip.get_pretrained_cfg(cfg.model_name, cfg.pretrained).get("quick_gelu", False))
    return False


def tower_normalization(tower: ImageTowerConfig) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The input mean/std of ``tower`` (configured, else its pretrained tag's), or None when neither says:
    recorded before a checkpoint drops the tag, as the activation is."""
    if tower.mean and tower.std:
        return tuple(tower.mean), tuple(tower.std)
    if tower.pretrained and tower.model_name and not _looks_like_path(tower.pretrained):
        tag = open_clip.get_pretrained_cfg(tower.model_name, tower.pretrained)
        if tag.get("mean") and tag.get("std"):
            return tuple(tag["mean"]), tuple(tag["std"])
    return None


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def read_clip_state(path: str) -> dict[str, torch.Tensor]:
    """A CLIP state dict from an open_clip file (.bin/.pt/.safetensors) or OpenAI's TorchScript ``ViT-B-16.pt``."""
    if not Path(path).is_file():
        raise WeightsError(f"CLIP weights file not found: {path}")
    try:
        return load_state_dict(path)
    except Exception as exc:  # pickle/zip/safetensors errors, or a TorchScript archive weights_only refuses
        if not zipfile.is_zipfile(path):
            raise WeightsError(f"CLIP weights file {path} is corrupt or not a CLIP checkpoint "
                               f"({type(exc).__name__})") from exc
    try:  # OpenAI's release format: a TorchScript archive (tensors only are read from it)
        state = torch.jit.load(path, map_location="cpu").state_dict()
    except Exception as exc:
        raise WeightsError(f"CLIP weights file {path} is neither a state dict nor a TorchScript CLIP: {exc}") from exc
    return {k: v for k, v in state.items() if k not in ("input_resolution", "context_length", "vocab_size")}


def load_clip_file(model: open_clip.CLIP, path: str) -> None:
    state = read_clip_state(path)
    transient = {name for name, _ in model.named_buffers()} - set(model.state_dict())  # e.g. attn_mask
    state = {k: v for k, v in state.items() if k not in transient}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"CLIP weights {path} do not fit the configured architecture: {exc}") from exc


def clip_image_size(clip: open_clip.CLIP) -> int:
    size = clip.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def clip_normalization(clip: open_clip.CLIP) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(clip.visual, "preprocess_cfg", None) or {}
    return (tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)), tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)))


def image_encoder(visual: nn.Module) -> nn.Module:
    """The (global, patches) encoder of a tower: :class:`ClipImageEncoder` for ViTs, :class:`TimmImageEncoder`
    for timm towers."""
    if isinstance(visual, open_clip.timm_model.TimmModel):
        return TimmImageEncoder(visual)
    return ClipImageEncoder(visual)


def export_image_encoder(visual: nn.Module) -> nn.Module:
    """The encoder the targets export: a timm tower re-parameterised first (MobileOne/RepMixer branches folded
    into single convolutions, timm's ``reparameterize_model``; the same outputs to float rounding), on a copy."""
    if isinstance(visual, open_clip.timm_model.TimmModel):
        from timm.utils.model import reparameterize_model

        return TimmImageEncoder(reparameterize_model(copy.deepcopy(visual)).eval())
    return ClipImageEncoder(visual)


class ClipImageEncoder(nn.Module):
    """image (B,3,R,R) -> global embedding (B,E) and patch tokens in the joint space (B,N,E), both L2-normalised.

    Patch tokens go through CLIP's own projection (as in MaskCLIP), so the HOI
    decoder attends features that already live in the text-aligned space.
    """

    def __init__(self, visual: open_clip.transformer.VisionTransformer) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        previous = self.visual.output_tokens
        self.visual.output_tokens = True
        try:
            pooled, tokens = self.visual(images)
        finally:
            self.visual.output_tokens = previous
        if self.visual.proj is not None:
            tokens = tokens @ self.visual.proj
        return l2_normalize(pooled), l2_normalize(tokens)


def _timm_projections(visual: nn.Module) -> list[nn.Linear]:
    """The linear maps from a timm trunk's pooled features to the joint space: the trunk's classifier, then any
    open_clip head projection. Only average pooling with linear maps is supported: those commute with the pooling,
    which is what lets every location of the feature map be projected on its own."""
    trunk = visual.trunk
    head = getattr(trunk, "head", None)
    pool = getattr(getattr(head, "global_pool", None), "pool_type", None)
    layers = [getattr(head, "fc", None)] + [m for m in visual.head if not isinstance(m, nn.Dropout)]
    if pool != "avg" or not all(isinstance(m, nn.Linear) for m in layers):
        raise WeightsError(f"timm image tower {type(trunk).__name__}: only an average-pooled trunk with linear "
                           f"projections gives patch tokens (pool {pool!r}, head {[type(m).__name__ for m in layers]})")
    return layers


class TimmImageEncoder(nn.Module):
    """A timm tower (MobileCLIP's FastViT) as :class:`ClipImageEncoder`: image -> (global (B,E), patches (B,N,E)).

    The tower's global embedding is ``fc(mean over locations of the last feature map)``. The projections are
    linear, so applying them at every location gives patch tokens whose mean IS the global embedding before
    normalisation: the decoder attends features in the same joint space the global score uses.
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.projections = _timm_projections(visual)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.visual.trunk.forward_features(images).flatten(2).transpose(1, 2)
        for proj in self.projections:
            tokens = proj(tokens)
        return l2_normalize(tokens.mean(1)), l2_normalize(tokens)


def encode_text_embeddings(clip: open_clip.CLIP, embeddings: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """CLIP's ``encode_text`` from token embeddings (C,L,W) instead of ids; returns (C,E) unnormalised.

    CLIP's text attention is causal, so the tokens after the last end-of-text token cannot change any
    pooled output: the transformer runs on the first ``max(EOT) + 1`` positions only (HICO prompts:
    ~13 of 77), the same result for ~1/5 of the cost, which training pays every step.
    """
    eot = token_ids.argmax(dim=-1)
    mask = clip.attn_mask
    n = int(eot.max()) + 1 if mask is not None and token_ids.numel() else embeddings.shape[1]
    x = embeddings[:, :n] + clip.positional_embedding[:n].to(embeddings.dtype)
    x = clip.transformer(x, attn_mask=mask[:n, :n] if mask is not None else None)
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), eot]
    proj = clip.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def clip_tokenizer(clip: open_clip.CLIP) -> SimpleTokenizer:
    """OpenAI BPE tokenizer (ships inside open_clip, so it works offline)."""
    return SimpleTokenizer(context_length=clip.context_length)
