"""Small tensor ops written to export cleanly to OpenVINO, ONNX and ExecuTorch."""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` without its internal expand (exports cleanly to every runtime)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(eps * eps))
