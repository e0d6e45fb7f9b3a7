"""CLIP through open_clip: the image encoder (global + patch tokens) and a text encoder
that accepts prompt *embeddings*, so learnable [PREFIX]/[CONJUN] tokens can be spliced in.
"""

from __future__ import annotations

import os
from pathlib import Path

import open_clip
import torch
from open_clip.tokenizer import SimpleTokenizer
from torch import nn

from hoi_edge.config import ClipConfig
from hoi_edge.errors import WeightsError
from hoi_edge.model.ops import l2_normalize


def build_clip(cfg: ClipConfig) -> open_clip.CLIP:
    """Create the CLIP model; ``pretrained`` is an open_clip tag (downloads) or a local file."""
    if cfg.architecture is not None:
        model = open_clip.CLIP(**cfg.architecture)
        if cfg.pretrained:
            _load_file(model, cfg.pretrained)
        return model.eval()
    if cfg.pretrained and _looks_like_path(cfg.pretrained) and not Path(cfg.pretrained).is_file():
        raise WeightsError(f"CLIP weights file not found: {cfg.pretrained}")
    try:
        model = open_clip.create_model(cfg.model_name, pretrained=cfg.pretrained or None)
    except RuntimeError as exc:
        raise WeightsError(
            f"cannot load CLIP '{cfg.model_name}' weights '{cfg.pretrained}': {exc}. "
            "Offline? pass a local open_clip weights file with --clip-weights PATH."
        ) from exc
    if not isinstance(model, open_clip.CLIP) or not isinstance(model.visual, open_clip.transformer.VisionTransformer):
        raise WeightsError(f"CLIP model '{cfg.model_name}' must be an open_clip ViT with the built-in text tower")
    return model.eval()


def _looks_like_path(value: str) -> bool:
    return os.sep in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def _load_file(model: nn.Module, path: str) -> None:
    if not Path(path).is_file():
        raise WeightsError(f"CLIP weights file not found: {path}")
    try:
        open_clip.load_checkpoint(model, path)
    except Exception as exc:  # corrupt file or wrong architecture: both are the user's file
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
    """CLIP's ``encode_text`` from token embeddings (C,L,W) instead of ids; returns (C,E) unnormalised."""
    x = embeddings + clip.positional_embedding.to(embeddings.dtype)
    x = clip.transformer(x, attn_mask=clip.attn_mask)
    x = clip.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), token_ids.argmax(dim=-1)]
    proj = clip.text_projection
    return proj(x) if isinstance(proj, nn.Linear) else x @ proj


def clip_tokenizer(clip: open_clip.CLIP) -> SimpleTokenizer:
    """OpenAI BPE tokenizer (ships inside open_clip, so it works offline)."""
    return SimpleTokenizer(context_length=clip.context_length)
