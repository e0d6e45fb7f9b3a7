"""Loading an upstream RangiLyu/nanodet PyTorch checkpoint into :class:`NanoDet`.

Upstream files come as a Lightning ``.ckpt`` (``state_dict`` with ``model.*`` keys and, when
trained with EMA, ``avg_model.*`` keys that upstream prefers) or a ``.pth`` holding a
``state_dict`` (possibly ``module.``-prefixed) or the plain dict. Upstream's NanoDetHead also
builds ``gfl_reg`` convs that are never used when ``share_cls_reg`` is set; those keys are
dropped, everything else must fit exactly (:func:`hoi_edge.model.weights.load_strict`).

The NanoDet-g 416 weights upstream publishes are on Google Drive (README "Legacy Model Zoo"),
which no hub client fetches: download the file and pass its path.
"""

from __future__ import annotations

import os

import torch

from hoi_edge.model.nanodet import NanoDet
from hoi_edge.model.weights import load_strict, read_state_dict

UNUSED_SHARED_HEAD = "head.gfl_reg."


def upstream_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Model keys of an upstream state dict: EMA weights when present, prefixes stripped."""
    if any(k.startswith("avg_model.") for k in state):
        state = {k[len("avg_model."):]: v for k, v in state.items() if k.startswith("avg_model.")}
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_nanodet_official(model: NanoDet, path: str | os.PathLike[str]) -> None:
    """Load an upstream checkpoint strictly (one WeightsError line on any missing/extra/mis-shaped key)."""
    if model.is_folded:
        raise ValueError("load upstream weights before fold_batchnorm(): they hold the BatchNorm statistics")
    state = upstream_state(read_state_dict(path, "NanoDet"))
    state = {k: v for k, v in state.items() if not k.startswith(UNUSED_SHARED_HEAD)}
    load_strict(model, state, str(path))


def nanodet_from_official(path: str | os.PathLike[str], **kwargs) -> NanoDet:
    """An eval-mode :class:`NanoDet` (NanoDet-g defaults, override with ``kwargs``) with upstream weights."""
    model = NanoDet(**kwargs)
    load_nanodet_official(model, path)
    return model.eval()
