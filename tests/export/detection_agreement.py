"""Agreement of an artifact's final detections with the PyTorch reference's, written out here on purpose
(not hoi_edge.validate's code), so the accuracy tests do not share the code they check.

Per image, the reference's top-k triplets are matched one-to-one, in rank order, to the artifact's top-k:
same HOI class and IoU >= 0.5 on both the human and the object box (the HICO-DET rule with the
reference in the place of the ground truth), the best such candidate first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hoi_edge.pipeline.postprocess import HOIDetection

# Final detections vs PyTorch on the 14 photos (agreement() below): minimum mean top-10
# overlap, minimum mean IoU of matched boxes, maximum median relative score error. Measured on the tiny
# model: FP16 0.96 / 0.99 / 0.005; INT8 (6 calibration photos) 0.40-0.54 / 0.71-0.85 / 0.68-0.70 -- the tiny
# random DETR amplifies INT8 noise in its boxes and scores (raised to the power 2.8), so INT8 is far looser.
# A text bank shuffled among each object's classes reaches an overlap of only 0.12-0.19.
FINAL_TOLERANCE = {"fp16": (0.85, 0.95, 0.05), "int8": (0.3, 0.6, 1.0)}


@dataclass(frozen=True)
class Agreement:
    overlap: float            # mean over images of matched / reference top-k triplets
    box_iou: float            # mean over matched triplets of (human IoU + object IoU) / 2
    score_error: float        # median over matched triplets of |score - reference score| / reference score
    matched: int

    def check(self, min_overlap: float, min_box_iou: float, max_score_error: float) -> list[str]:
        """What falls short of the tolerances (empty when all are met; nothing matched is a failure)."""
        problems = []
        if self.matched == 0:
            return ["no reference triplet was matched"]
        if self.overlap < min_overlap:
            problems.append(f"top-k overlap {self.overlap:.3f} < {min_overlap}")
        if self.box_iou < min_box_iou:
            problems.append(f"matched box IoU {self.box_iou:.3f} < {min_box_iou}")
        if self.score_error > max_score_error:
            problems.append(f"median relative score error {self.score_error:.3f} > {max_score_error}")
        return problems


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def agreement(reference: Sequence[Sequence[HOIDetection]], candidate: Sequence[Sequence[HOIDetection]],
              k: int = 10) -> Agreement:
    """Per-image detections of the reference and of the candidate (same images, same order)."""
    overlaps, ious, errors = [], [], []
    for ref, cand in zip(reference, candidate, strict=True):
        ref, cand = list(ref)[:k], list(cand)[:k]
        if not ref:
            raise ValueError("the reference found nothing on an image: agreement there would be vacuous")
        used: set[int] = set()
        for r in ref:
            best, best_q = -1, 0.5
            for j, c in enumerate(cand):
                if j in used or c.hoi != r.hoi:
                    continue
                q = min(_iou(r.human_box, c.human_box), _iou(r.object_box, c.object_box))
                if q >= best_q:
                    best, best_q = j, q
            if best >= 0:
                used.add(best)
                c = cand[best]
                ious.append((_iou(r.human_box, c.human_box) + _iou(r.object_box, c.object_box)) / 2)
                errors.append(abs(c.score - r.score) / r.score)
        overlaps.append(len(used) / len(ref))
    return Agreement(overlap=float(np.mean(overlaps)), box_iou=float(np.mean(ious)) if ious else 0.0,
                     score_error=float(np.median(errors)) if errors else float("inf"), matched=len(ious))
