"""Official HICO-DET evaluation (ho-rcnn ``eval_one.m`` rules) for HOI detections.

Typical use::

    gt = load_groundtruth("instances_test2015.json")
    preds = read_predictions("preds.jsonl", gt)
    result = evaluate(gt, preds, EvalConfig(top_k=100, zero_shot=load_split("splits.json", "rf-uc")))
    print(result.to_markdown())
"""

from hoi_edge.eval.ap import RECALL_THRESHOLDS, voc_ap_11point
from hoi_edge.eval.boxes import elementwise_iou, pairwise_iou
from hoi_edge.eval.evaluator import (
    RARE_SOURCES,
    SETTINGS,
    EvalConfig,
    EvalResult,
    ZeroShotResult,
    evaluate,
    is_hico_label_space,
    known_object_filter,
    select_top_k,
)
from hoi_edge.eval.groundtruth import HICO_NUM_CLASSES, GroundTruth, load_groundtruth
from hoi_edge.eval.matching import IOU_THRESHOLD, MatchResult, match_detections, match_detections_reference
from hoi_edge.eval.predictions import (
    ImageDetections,
    Predictions,
    predictions_from_groundtruth,
    read_predictions,
    write_predictions,
)
from hoi_edge.eval.splits import SPLIT_NAMES, ZeroShotSplit, load_split, load_splits, normalise_split_name

__all__ = [
    "HICO_NUM_CLASSES",
    "IOU_THRESHOLD",
    "RARE_SOURCES",
    "SETTINGS",
    "RECALL_THRESHOLDS",
    "SPLIT_NAMES",
    "EvalConfig",
    "EvalResult",
    "GroundTruth",
    "ImageDetections",
    "MatchResult",
    "Predictions",
    "ZeroShotResult",
    "ZeroShotSplit",
    "elementwise_iou",
    "evaluate",
    "is_hico_label_space",
    "known_object_filter",
    "load_groundtruth",
    "load_split",
    "load_splits",
    "match_detections",
    "match_detections_reference",
    "normalise_split_name",
    "pairwise_iou",
    "predictions_from_groundtruth",
    "read_predictions",
    "select_top_k",
    "voc_ap_11point",
    "write_predictions",
]
