"""Builders for small hand-made GT / prediction sets shared by the evaluator tests."""

from __future__ import annotations

import numpy as np

from hoi_edge.eval import GroundTruth, Predictions

H1, O1 = [0, 0, 99, 99], [200, 0, 299, 99]
H2, O2 = [400, 0, 499, 99], [600, 0, 699, 99]


def make_gt(
    pairs: list[tuple[int, int, list[float], list[float]]], n_images: int = 1, num_classes: int = 3
) -> GroundTruth:
    """pairs: (image, hoi, human_box, object_box)."""
    return GroundTruth.from_arrays(
        filenames=[f"img{i}.jpg" for i in range(n_images)],
        num_classes=num_classes,
        image=[p[0] for p in pairs],
        hoi=[p[1] for p in pairs],
        boxes_h=[p[2] for p in pairs],
        boxes_o=[p[3] for p in pairs],
        class_object=list(range(num_classes)),
    )


def make_preds(dets: list[tuple[int, int, float, list[float], list[float]]]) -> Predictions:
    """dets: (image, hoi, score, human_box, object_box)."""
    return Predictions.from_arrays(
        image=[d[0] for d in dets],
        hoi=[d[1] for d in dets],
        score=[d[2] for d in dets],
        boxes_h=[d[3] for d in dets] or np.zeros((0, 4)),
        boxes_o=[d[4] for d in dets] or np.zeros((0, 4)),
    )
