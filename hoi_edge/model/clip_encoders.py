"""CLIP through open_clip: the image encoder (global + patch tokens) and a text encoder
that accepts prompt *embeddings*, so learnable [PREFIX]/[CONJUN] tokens can be spliced in.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import open_clip
import torch
from open_clip.factory import load_state_dict
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

from hoi_edge.core.errors import WeightsError
from hoi_edge.model.config import ClipConfig
from hoi_edge.model.ops import l2_normalize


def build_clip(cfg: ClipConfig) -> open_clip.CLIP:
    """Create the CLIP model; ``pretrained`` is an open_clip tag (downloads) or a local file."""
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


def quick_gelu(cfg: ClipConfig) -> bool:
    """The configured activation, else the one open_clip registers for the pretrained tag (OpenAI: QuickGELU)."""
    if cfg.quick_gelu is not None:
        return cfg.quick_gelu
    if cfg.pretrained and not _looks_like_path(cfg.pretrained):
        return bool(open_clip.get_pretrained_cfg(cfg.model_name, cfg.pretrained).get("quick_gelu", False))
    return False


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
