"""Box overlap in the HICO-DET / VOC inclusive-pixel convention.

A box ``[x1, y1, x2, y2]`` covers pixels ``x1..x2`` inclusive, so its width is
``x2 - x1 + 1``. The official HICO-DET MATLAB code (``VOCevaldet_bboxpair.m``)
measures overlap this way; using the exclusive convention would shift IoU on
small boxes and change which detections pass the 0.5 threshold. The rule itself is
:func:`hoi_edge.core.geometry.iou_inclusive`; this module checks shapes for the evaluator.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from hoi_edge.core.geometry import iou_inclusive


def _as_boxes(boxes: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def pairwise_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU matrix ``(N, M)`` between every box of ``a`` (N, 4) and every box of ``b`` (M, 4)."""
    aa, bb = _as_boxes(a, "a"), _as_boxes(b, "b")
    return iou_inclusive(aa[:, None, :], bb[None, :, :])


def elementwise_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """IoU ``(N,)`` of row ``i`` of ``a`` with row ``i`` of ``b``.

    Matching uses this on flattened (detection, GT) candidate pairs, which avoids
    building one small matrix per (class, image) group.
    """
    aa, bb = _as_boxes(a, "a"), _as_boxes(b, "b")
    if aa.shape != bb.shape:
        raise ValueError(f"a and b must have the same shape, got {aa.shape} and {bb.shape}")
    return iou_inclusive(aa, bb)
