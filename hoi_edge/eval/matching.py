"""Assign detections to GT pairs with the official HICO-DET rule, vectorised with NumPy.

Rule (``VOCevaldet_bboxpair.m``), per HOI class:

1. rank all detections of the class over the whole test set by score, highest first.
   The official code lists each class's detections image by image, in the order of the
   test image list, and sorts that list with MATLAB's stable ``sort``; so on equal scores
   the detection from the earlier image (GT image index) ranks first, and within one
   image the earlier one in the prediction file;
2. a detection is compared only with GT pairs of its class in its image; the overlap with a
   pair is ``min(IoU(human boxes), IoU(object boxes))`` and the detection picks the pair
   with the largest overlap (first one on ties);
3. it is a TP iff that overlap is >= 0.5 and the picked pair is still unclaimed; the pair
   is then claimed. There is no fallback to the second-best pair.

Why the claim step vectorises: a detection whose best pair is already claimed is just a
FP and claims nothing, so a pair ``g`` is claimed by exactly the first-ranked detection
that picks ``g`` with overlap >= 0.5. That is "first occurrence per best pair" in rank
order, i.e. one ``np.unique(..., return_index=True)``. Overlaps are computed on the flat
list of (detection, candidate pair) combinations, built from one sort of the GT by
(class, image), so no Python loop runs over detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hoi_edge.eval.boxes import elementwise_iou, pairwise_iou
from hoi_edge.eval.groundtruth import GroundTruth
from hoi_edge.eval.predictions import Predictions

#: Minimum min(human IoU, object IoU) for a match, as in the official code (inclusive).
IOU_THRESHOLD = 0.5


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Outcome of matching; every array is in ranked order (see :func:`rank_detections`).

    ``order[r]`` is the index (into the predictions) of the detection at rank ``r``;
    ``best_gt`` is the index of the picked GT pair (-1 if the image has none of the class)
    and ``best_overlap`` its min-IoU (-1 if none). ``class_start[c]:class_start[c + 1]``
    is the rank range of class ``c``.
    """

    order: np.ndarray
    hoi: np.ndarray
    tp: np.ndarray
    best_gt: np.ndarray
    best_overlap: np.ndarray
    class_start: np.ndarray


def rank_detections(hoi: np.ndarray, score: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Indices sorting detections by class asc, score desc, image index asc, input position asc.

    The last two keys reproduce the official tie order (see the module docstring);
    ``np.lexsort`` is stable, so input position needs no key of its own.
    """
    return np.lexsort((image, -score, hoi))


def match_detections(
    gt: GroundTruth, predictions: Predictions, iou_threshold: float = IOU_THRESHOLD
) -> MatchResult:
    """Label every detection TP or FP with the official rule (see module docstring)."""
    n_images = np.int64(max(gt.num_images, 1))
    order = rank_detections(predictions.hoi, predictions.score, predictions.image)
    d_hoi = predictions.hoi[order]
    d_key = d_hoi * n_images + predictions.image[order]
    n_det = d_key.shape[0]

    # GT pairs grouped by (class, image); the stable sort keeps annotation order inside a
    # group, which decides ties the same way as the official loop over GT pairs.
    g_key = gt.hoi * n_images + gt.image
    g_order = np.argsort(g_key, kind="stable")
    g_keys_sorted = g_key[g_order]
    u_keys, u_start, u_count = np.unique(g_keys_sorted, return_index=True, return_counts=True)

    if u_keys.size:
        pos = np.minimum(np.searchsorted(u_keys, d_key), u_keys.size - 1)
        found = u_keys[pos] == d_key
        count = np.where(found, u_count[pos], 0).astype(np.int64)
        start = np.where(found, u_start[pos], 0).astype(np.int64)
    else:
        count = np.zeros(n_det, dtype=np.int64)
        start = np.zeros(n_det, dtype=np.int64)

    # Flat (detection, candidate GT) combinations: detection r repeated count[r] times.
    total = int(count.sum())
    rank_rep = np.repeat(np.arange(n_det, dtype=np.int64), count)
    offsets = np.cumsum(count) - count
    within = np.arange(total, dtype=np.int64) - np.repeat(offsets, count)
    gt_rep = g_order[np.repeat(start, count) + within]
    det_rep = order[rank_rep]
    overlap = np.minimum(
        elementwise_iou(predictions.boxes_h[det_rep], gt.boxes_h[gt_rep]),
        elementwise_iou(predictions.boxes_o[det_rep], gt.boxes_o[gt_rep]),
    )

    best_overlap = np.full(n_det, -1.0)
    best_gt = np.full(n_det, -1, dtype=np.int64)
    has = count > 0
    if total:
        seg_max = np.maximum.reduceat(overlap, offsets[has])
        best_overlap[has] = seg_max
        is_max = overlap == np.repeat(best_overlap, count)
        ranks_with_max, first = np.unique(rank_rep[is_max], return_index=True)
        best_gt[ranks_with_max] = gt_rep[np.flatnonzero(is_max)[first]]

    tp = np.zeros(n_det, dtype=bool)
    valid = np.flatnonzero(best_overlap >= iou_threshold)
    if valid.size:
        _, first_claim = np.unique(best_gt[valid], return_index=True)
        tp[valid[first_claim]] = True

    class_start = np.searchsorted(d_hoi, np.arange(gt.num_classes + 1, dtype=np.int64))
    return MatchResult(
        order=order, hoi=d_hoi, tp=tp, best_gt=best_gt, best_overlap=best_overlap, class_start=class_start
    )


def match_detections_reference(
    gt: GroundTruth, predictions: Predictions, iou_threshold: float = IOU_THRESHOLD
) -> np.ndarray:
    """Straight transcription of the official per-detection loop; returns TP flags per detection.

    Slow (Python loops); it exists so tests can check :func:`match_detections` against it.
    """
    tp = np.zeros(len(predictions), dtype=bool)
    for c in range(gt.num_classes):
        # Official tie order: score desc, then image index, then position in the input.
        dets = sorted(
            np.flatnonzero(predictions.hoi == c).tolist(),
            key=lambda d: (-float(predictions.score[d]), int(predictions.image[d]), d),
        )
        claimed: set[int] = set()
        for d in dets:
            cand = np.flatnonzero((gt.hoi == c) & (gt.image == predictions.image[d]))
            ov_max, j_max = -np.inf, -1
            for j in cand:
                ov_h = pairwise_iou(predictions.boxes_h[d : d + 1], gt.boxes_h[j : j + 1])[0, 0]
                ov_o = pairwise_iou(predictions.boxes_o[d : d + 1], gt.boxes_o[j : j + 1])[0, 0]
                ov = min(float(ov_h), float(ov_o))
                if ov > ov_max:
                    ov_max, j_max = ov, int(j)
            if ov_max >= iou_threshold and j_max not in claimed:
                tp[d] = True
                claimed.add(j_max)
    return tp
