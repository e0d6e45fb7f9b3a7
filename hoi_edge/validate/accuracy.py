"""HICO-DET mAP of each backend through the official evaluator (:mod:`hoi_edge.eval`), and the
drop of an artifact against the reference, in mAP points (reference minus artifact).

The GT's rare / non-rare lists are used when the file has them; otherwise the reference
vocabulary's (the built-in HICO-DET one carries the official 138 rare classes), so the small
per-image annotation files still give Rare / Non-rare numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.eval import (
    EvalConfig,
    GroundTruth,
    Predictions,
    ZeroShotSplit,
    evaluate,
)

METRICS = ("full", "rare", "non_rare", "unseen", "seen")
#: how reports and failure messages name each metric (the Markdown table's column names)
METRIC_NAMES = {"full": "Full", "rare": "Rare", "non_rare": "Non-rare", "unseen": "Unseen", "seen": "Seen"}


@dataclass(frozen=True)
class MapScores:
    """Percent (0-100); ``None`` where undefined (no GT for those classes, or no split)."""

    full: float | None
    rare: float | None
    non_rare: float | None
    mean_recall: float | None
    unseen: float | None = None
    seen: float | None = None
    split: str | None = None
    classes_evaluated: int = 0
    detections: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def drop_from(self, reference: "MapScores") -> dict[str, float | None]:
        """Reference minus this, per metric, in mAP points (positive: this backend is worse)."""
        return {m: None if getattr(reference, m) is None or getattr(self, m) is None
                else getattr(reference, m) - getattr(self, m) for m in METRICS}


def _opt(v: float) -> float | None:
    return None if v is None or math.isnan(v) else float(v)


def check_vocabulary(gt: GroundTruth, vocab: Vocabulary) -> list[str]:
    """Raise when the GT's class indices cannot be the model's; warn on softer mismatches."""
    if gt.num_classes != vocab.num_classes:
        raise VocabularyError(f"ground truth {gt.source} has {gt.num_classes} HOI classes, but the reference "
                              f"vocabulary '{vocab.name}' has {vocab.num_classes}: they do not describe the same "
                              "classes")
    known = gt.class_object >= 0
    differ = int(np.count_nonzero(gt.class_object[known] != vocab.hoi_object[known]))
    if differ:
        return [f"{differ} HOI classes of {gt.source} map to other object indices than the vocabulary "
                f"'{vocab.name}' (object numbering differs?); mAP uses HOI class indices only"]
    return []


def eval_config(gt: GroundTruth, vocab: Vocabulary, split: ZeroShotSplit | None = None) -> EvalConfig:
    rare = None
    if gt.rare is None and gt.non_rare is None and vocab.rare:
        rare = tuple(vocab.rare)
    return EvalConfig(rare=rare, zero_shot=split)


def map_scores(gt: GroundTruth, predictions: Predictions, config: EvalConfig) -> MapScores:
    result = evaluate(gt, predictions, config)
    z = result.zero_shot
    return MapScores(
        full=_opt(result.map_full), rare=_opt(result.map_rare), non_rare=_opt(result.map_non_rare),
        mean_recall=_opt(result.mean_recall), unseen=_opt(z.unseen) if z else None, seen=_opt(z.seen) if z else None,
        split=z.split if z else None, classes_evaluated=result.num_classes_evaluated,
        detections=result.num_detections,
    )
