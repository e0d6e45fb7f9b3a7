"""Loading pretrained detector weights: official DETR checkpoints by name (downloads) or a local file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from hoi_edge.core.errors import WeightsError

DETR_URLS = {
    "detr-r50": "https://dl.fbaipublicfiles.com/detr/detr-r50-e632da11.pth",
    "detr-r101": "https://dl.fbaipublicfiles.com/detr/detr-r101-2c7b67e5.pth",
}


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """torch.load with ``weights_only`` and a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} weights file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: the file is not a torch checkpoint
        raise WeightsError(f"{what} weights file {path} is corrupt or not a PyTorch checkpoint: {exc}") from exc
    for wrapper in ("model", "state_dict"):   # DETR .pth / Lightning .ckpt and upstream NanoDet .pth
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{what} weights file {path} does not hold a state dict")
    return data


def check_state(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    """Compare keys and shapes, turning a mismatch into one readable message."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"{len(wrong)} with the wrong shape (e.g. {wrong[:3]})" if wrong else ""]
        raise WeightsError(f"weights {source} do not fit the model: " + "; ".join(p for p in parts if p))


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    check_state(module.state_dict(), state, source)
    module.load_state_dict(state, strict=True)


def load_detector_weights(detector: nn.Module, spec: str) -> None:
    """``spec`` is an official DETR name (fetched once into the torch hub cache) or a local file."""
    if spec in DETR_URLS:
        try:
            state = torch.hub.load_state_dict_from_url(DETR_URLS[spec], map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsError(
                f"cannot download detector weights '{spec}' ({exc}); offline? pass a local file with --detector-weights"
            ) from exc
        state = state.get("model", state)
    else:
        state = read_state_dict(spec, "detector")
    load_strict(detector, state, spec)
