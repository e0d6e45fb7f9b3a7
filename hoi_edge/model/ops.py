"""Small tensor ops written to export cleanly to OpenVINO, ONNX and ExecuTorch."""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize`` without its internal expand (exports cleanly to every runtime)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True).clamp_min(eps * eps))


class DecomposedLayerNorm(torch.nn.Module):
    """``nn.LayerNorm`` over the last dim as mean / sub / mul / rsqrt / add (same parameters, same outputs
    to float rounding). ExecuTorch's XNNPACK backend has no layer-norm op, so ``native_layer_norm`` runs in
    portable kernels between delegate calls; these elementwise ops are all delegated. ExecuTorch only:
    OpenVINO and ONNX Runtime fuse the plain LayerNorm into their own kernels."""

    def __init__(self, norm: torch.nn.LayerNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - _mean_last(x)
        y = centred * torch.rsqrt(_mean_last(centred * centred) + self.eps)
        return y * self.weight + self.bias if self.weight is not None else y


def _mean_last(x: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim as a 4-D global average pool (keepdim), the only ``mean`` XNNPACK delegates."""
    lead = x.shape[:-1]
    rows = 1
    for n in lead:
        rows *= n
    return x.reshape(1, rows, x.shape[-1], 1).mean((2, 3), keepdim=True).reshape(*lead, 1)


def decompose_layer_norms(module: torch.nn.Module) -> int:
    """Replace every ``nn.LayerNorm`` over one last dim in ``module`` (in place) by :class:`DecomposedLayerNorm`."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.LayerNorm) and len(child.normalized_shape) == 1:
                setattr(parent, name, DecomposedLayerNorm(child))
                count += 1
    return count
