"""HO interactor: one token per candidate <human, object> pair from instance features and box geometry.

All K*K ordered pairs of the K kept instances are built in-graph (static
shapes for export); ``pair_mask`` marks the feasible ones: the subject is a
valid human, the object is a different valid instance.
"""

from __future__ import annotations

import torch
from torch import nn

EPS = 1e-6
MIN_SIZE = 1e-2          # box sides are fractions of the longer image side; keeps ratios bounded
MAX_FEATURE = 1e2        # bounded encodings quantize well: one degenerate box must not set the INT8 range
SPATIAL_DIM = 38


def box_iou_xyxy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of two box tensors of the same shape (..., 4), continuous coordinates (w = x2 - x1).

    The torch, in-graph twin of :func:`hoi_edge.core.geometry.pairwise_iou_continuous` (a test compares them).
    """
    lt, rb = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + EPS)


def spatial_encoding(h: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
    """UPT-style pair geometry: centres, sizes, areas, aspect, IoU, directional offsets, distance; + log."""
    hc, oc = (h[..., :2] + h[..., 2:]) / 2, (o[..., :2] + o[..., 2:]) / 2
    hw, hh = (h[..., 2] - h[..., 0]).clamp(min=MIN_SIZE), (h[..., 3] - h[..., 1]).clamp(min=MIN_SIZE)
    ow, oh = (o[..., 2] - o[..., 0]).clamp(min=MIN_SIZE), (o[..., 3] - o[..., 1]).clamp(min=MIN_SIZE)
    dx, dy = (oc[..., 0] - hc[..., 0]) / hw, (oc[..., 1] - hc[..., 1]) / hh
    feats = torch.stack([
        hc[..., 0], hc[..., 1], oc[..., 0], oc[..., 1], hw, hh, ow, oh,
        hw * hh, ow * oh, (ow * oh) / (hw * hh), hw / hh, ow / oh, box_iou_xyxy(h, o),
        dx.clamp(min=0), (-dx).clamp(min=0), dy.clamp(min=0), (-dy).clamp(min=0), torch.sqrt(dx * dx + dy * dy),
    ], dim=-1).clamp(max=MAX_FEATURE)
    return torch.cat([feats, torch.log(feats + EPS)], dim=-1)


def pair_feasibility(valid: torch.Tensor, human: torch.Tensor) -> torch.Tensor:
    """(B,K) validity and humanness -> (B,K*K) bool: subject i is a valid human, object j != i is valid.

    The in-graph twin of :func:`hoi_edge.pipeline.postprocess.feasible_pairs` (a test compares them).
    """
    k = valid.shape[1]
    subject = (valid * human).unsqueeze(2) > 0.5
    obj = valid.unsqueeze(1) > 0.5
    # a float identity compared, not a bool one: ONNX Runtime has no bool EyeLike kernel (TorchScript ONNX export)
    not_self = torch.eye(k, device=valid.device) < 0.5
    return (subject & obj & not_self).flatten(1)


class PairGeometry(nn.Module):
    """:func:`spatial_encoding` as a module, so INT8 keeps the pair geometry in floating point by one name
    (``interactor.geometry`` in the HOI head's sensitive layers, :mod:`compress.quantize`): quantizing its
    intermediate sums and ratios per tensor (ExecuTorch's XNNPACK quantizer annotates every add and mul)
    rounded ``feats + EPS`` to 0 and made its log -inf."""

    def forward(self, h: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return spatial_encoding(h, o)


class HOInteractor(nn.Module):
    """(features (B,K,Dd), boxes (B,K,4), valid (B,K)) -> pair tokens (B,K*K,D)."""

    def __init__(self, instance_dim: int, dim: int) -> None:
        super().__init__()
        self.human_proj = nn.Linear(instance_dim, dim)
        self.object_proj = nn.Linear(instance_dim, dim)
        self.spatial = nn.Sequential(nn.Linear(SPATIAL_DIM, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.fuse = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.geometry = PairGeometry()
        self.register_buffer("whole_image", torch.tensor([0.0, 0.0, 1.0, 1.0]), persistent=False)

    def forward(self, features: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Padding slots get the whole-image box, so no pair's geometry is degenerate."""
        v = valid.unsqueeze(-1)
        boxes = boxes * v + (1.0 - v) * self.whole_image.to(boxes.dtype)
        k = features.shape[1]
        # repeat, not expand: zero-stride views break ExecuTorch's INT8 lowering
        h = self.human_proj(features).unsqueeze(2).repeat(1, 1, k, 1)
        o = self.object_proj(features).unsqueeze(1).repeat(1, k, 1, 1)
        hb = boxes.unsqueeze(2).repeat(1, 1, k, 1)
        ob = boxes.unsqueeze(1).repeat(1, k, 1, 1)
        s = self.spatial(self.geometry(hb, ob))
        return self.fuse(torch.cat([h, o, s], dim=-1)).flatten(1, 2)
