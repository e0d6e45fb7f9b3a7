"""Box overlap in the HICO-DET / VOC inclusive-pixel convention.

A box ``[x1, y1, x2, y2]`` covers pixels ``x1..x2`` inclusive, so its width is
``x2 - x1 + 1``. The official HICO-DET MATLAB code (``VOCevaldet_bboxpair.m``)
measures overlap this way; using the exclusive convention would shift IoU on
small boxes and change which detections pass the 0.5 threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable box arrays ``(..., 4)``; boxes that do not intersect give 0."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1.0
    # The official code only computes an overlap when iw > 0 and ih > 0; otherwise it is 0.
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + 1.0) * (a[..., 3] - a[..., 1] + 1.0)
    area_b = (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)
    union = area_a + area_b - inter
    out = np.zeros(np.broadcast_shapes(inter.shape, union.shape), dtype=np.float64)
    np.divide(inter, union, out=out, where=(inter > 0) & (union > 0))
    return out


def _as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def pairwise_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU matrix ``(N, M)`` between every box of ``a`` (N, 4) and every box of ``b`` (M, 4)."""
    aa, bb = _as_boxes(a, "a"), _as_boxes(b, "b")
    return _iou(aa[:, None, :], bb[None, :, :])


def elementwise_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU ``(N,)`` of row ``i`` of ``a`` with row ``i`` of ``b``.

    Matching uses this on flattened (detection, GT) candidate pairs, which avoids
    building one small matrix per (class, image) group.
    """
    aa, bb = _as_boxes(a, "a"), _as_boxes(b, "b")
    if aa.shape != bb.shape:
        raise ValueError(f"a and b must have the same shape, got {aa.shape} and {bb.shape}")
    return _iou(aa, bb)
