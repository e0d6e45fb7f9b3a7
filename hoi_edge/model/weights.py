"""Reading weight files safely (``torch.load`` that never unpickles code, one clear error per bad file) and
loading them into modules strictly."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hoi_edge.core.errors import WeightsError


def safe_torch_load(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: a missing, damaged or code-carrying file is one
    :class:`WeightsError` naming ``what`` and the file. The one guarded load every weights reader uses."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: the file is not a torch checkpoint
        raise WeightsError(f"{what} {path} is corrupt or not a PyTorch file: {load_error_reason(exc)}") from None


def load_error_reason(exc: Exception) -> str:
    """torch.load's error without its advice to retry with ``weights_only=False``: that runs arbitrary
    code from the file, which is unsafe advice for a file whose origin is unknown."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" ({found.group(1)})" if found else ""
        return (f"it holds Python objects{what} that a hoi-edge checkpoint never contains; they are not "
                "unpickled, since that could run code from the file")
    if "PytorchStreamReader" in text:
        return text.split(". ")[0].replace("PytorchStreamReader failed", "failed") + " (truncated or damaged?)"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def read_state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """The state dict in a weights file (also inside DETR's ``model`` and Lightning's ``state_dict`` wrappers)."""
    path = Path(path)
    data = safe_torch_load(path, f"{what} weights file")
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


def load_detector_weights(detector: nn.Module, path: str | Path) -> None:
    """A local DETR checkpoint file (the official ``.pth`` loads as is) into ``detector``, strictly."""
    load_strict(detector, read_state_dict(path, "detector"), str(path))
