"""Box overlap (IoU) of ``x1, y1, x2, y2`` boxes, in the two pixel conventions the project uses.

* **inclusive** (``w = x2 - x1 + 1``): a box covers pixels ``x1..x2``. The official HICO-DET
  evaluation (ho-rcnn ``VOCevaldet_bboxpair.m``) measures overlap this way, so the evaluator
  (:mod:`hoi_edge.eval`) must use it: the exclusive form would shift IoU on small boxes and change
  which detections pass the 0.5 threshold.
* **continuous** (``w = x2 - x1``): boxes are regions of the real plane. Training uses it
  (:mod:`train.targets`, :mod:`train.dataset`) because the detector predicts real-valued box edges,
  and UPT's association rule (IoU >= 0.5 on both boxes), whose threshold training reuses, was defined
  with torchvision's ``box_iou``, which is continuous. The HO interactor's in-graph spatial feature
  (:func:`hoi_edge.model.interactor.box_iou_xyxy`) is the same convention in torch; a test checks
  the two against each other.
"""

from __future__ import annotations

import numpy as np


def iou_inclusive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of broadcastable box arrays ``(..., 4)``, inclusive pixels (HICO-DET official); boxes that do
    not intersect give 0, as in the official code (which computes an overlap only when iw, ih > 0)."""
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1.0
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1.0
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_a = (a[..., 2] - a[..., 0] + 1.0) * (a[..., 3] - a[..., 1] + 1.0)
    area_b = (b[..., 2] - b[..., 0] + 1.0) * (b[..., 3] - b[..., 1] + 1.0)
    union = area_a + area_b - inter
    out = np.zeros(np.broadcast_shapes(inter.shape, union.shape), dtype=np.float64)
    np.divide(inter, union, out=out, where=(inter > 0) & (union > 0))
    return out


def pairwise_iou_continuous(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,4) x (M,4) -> (N,M) IoU, continuous coordinates (training's convention; see the module doc)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
