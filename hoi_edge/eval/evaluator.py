"""HICO-DET mAP: Full / Rare / Non-rare, Default or Known-Object, plus zero-shot Unseen / Seen.

Pipeline: optional box offset -> optional top-k per image -> optional Known-Object filter ->
official matching (:mod:`hoi_edge.eval.matching`) -> 11-point AP per class
(:mod:`hoi_edge.eval.ap`) -> means. All AP / mAP / recall values in :class:`EvalResult`
are percentages (0-100), as papers report them.

Classes without GT have AP NaN and are left out of every mean, as in GEN-VLKT/HOICLIP's
Python evaluator (``if sum_gts == 0: continue``). The official MATLAB code would instead
score such a class AP 0 (its recall is 0/0 = NaN, which reaches no threshold) and average
it in. On the HICO-DET test set every class has GT, so the two agree; on small or custom
test sets they differ, and this module follows the Python evaluators.

Rare / Non-rare lists come from :class:`EvalConfig`, else the GT file, else -- when the GT
has no lists but is in HICO-DET's 600-class label space -- the built-in HICO-DET vocabulary
(``hoi_edge.data.vocabulary.load_vocabulary("hico").rare``); ``EvalResult.rare_source`` says which.

Known-Object approximation: the official code keeps, for a class with object ``o``, only
detections on images whose *image-level* HICO labels (``anno.mat``) contain ``o``. Only
the box annotations are available here, so an image "contains ``o``" when at least one of
its GT pairs has object ``o``. The two can differ on images whose image-level labels name
an object that has no annotated box pair.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary
from hoi_edge.eval.ap import voc_ap_11point
from hoi_edge.eval.groundtruth import GroundTruth
from hoi_edge.eval.matching import IOU_THRESHOLD, MatchResult, match_detections
from hoi_edge.eval.predictions import Predictions
from hoi_edge.eval.splits import ZeroShotSplit

SETTINGS = ("default", "known_object")

#: Values of ``EvalResult.rare_source``: where the Rare / Non-rare class lists came from.
RARE_SOURCES = ("config", "gt", "hico-vocabulary")


def normalise_setting(name: str) -> str:
    """'default'/'def' or 'known_object'/'known-object'/'ko'."""
    key = name.strip().lower().replace("-", "_")
    aliases = {"def": "default", "ko": "known_object", "knownobject": "known_object"}
    key = aliases.get(key, key)
    if key not in SETTINGS:
        raise ValueError(f"unknown setting {name!r}; expected one of {', '.join(SETTINGS)}")
    return key


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    ``rare`` / ``non_rare`` default to the lists in the GT file, then (if
    ``rare_from_vocabulary`` and the GT is HICO-DET's 600 classes) to the built-in HICO-DET
    vocabulary. ``box_offset`` is added to every predicted coordinate before matching
    (1 for 0-based predictions from PPDM/GEN-VLKT-style annotations).
    """

    setting: str = "default"
    top_k: int | None = None
    rare: tuple[int, ...] | None = None
    non_rare: tuple[int, ...] | None = None
    zero_shot: ZeroShotSplit | None = None
    iou_threshold: float = IOU_THRESHOLD
    box_offset: float = 0.0
    rare_from_vocabulary: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "setting", normalise_setting(self.setting))
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if not math.isfinite(self.box_offset):
            raise ValueError(f"box_offset must be a finite number, got {self.box_offset}")
        object.__setattr__(self, "box_offset", float(self.box_offset))
        for name in ("rare", "non_rare"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(int(i) for i in value))


@dataclass(frozen=True)
class ZeroShotResult:
    """Means over the unseen classes of a split, the seen ones, and all classes (percent)."""

    split: str
    unseen: float
    seen: float
    full: float
    num_unseen: int
    num_seen: int


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-class AP / max recall (NaN without GT) and their means, all in percent.

    ``rare_source`` is one of :data:`RARE_SOURCES`, or None when no Rare / Non-rare lists
    were available (``map_rare`` / ``map_non_rare`` are then NaN).
    """

    setting: str
    top_k: int | None
    num_images: int
    num_detections: int
    per_class_ap: np.ndarray
    per_class_recall: np.ndarray
    n_gt: np.ndarray
    map_full: float
    map_rare: float
    map_non_rare: float
    mean_recall: float
    zero_shot: ZeroShotResult | None = None
    rare_source: str | None = None
    box_offset: float = 0.0

    @property
    def num_classes_evaluated(self) -> int:
        return int(np.count_nonzero(self.n_gt))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN becomes ``null``."""
        out: dict[str, Any] = {
            "setting": self.setting,
            "top_k": self.top_k,
            "num_images": self.num_images,
            "num_detections": self.num_detections,
            "num_classes": int(self.n_gt.shape[0]),
            "num_classes_evaluated": self.num_classes_evaluated,
            "mAP_full": _json_float(self.map_full),
            "mAP_rare": _json_float(self.map_rare),
            "mAP_non_rare": _json_float(self.map_non_rare),
            "mean_recall": _json_float(self.mean_recall),
            "rare_source": self.rare_source,
            "box_offset": self.box_offset,
            "zero_shot": None,
            "per_class_ap": [_json_float(v) for v in self.per_class_ap.tolist()],
            "per_class_max_recall": [_json_float(v) for v in self.per_class_recall.tolist()],
            "per_class_n_gt": self.n_gt.tolist(),
        }
        if self.zero_shot is not None:
            z = self.zero_shot
            out["zero_shot"] = {
                "split": z.split,
                "mAP_unseen": _json_float(z.unseen),
                "mAP_seen": _json_float(z.seen),
                "mAP_full": _json_float(z.full),
                "num_unseen": z.num_unseen,
                "num_seen": z.num_seen,
            }
        return out

    def to_markdown(self) -> str:
        """Markdown tables, numbers in percent with two decimals ('n/a' when undefined)."""
        title = {"default": "Default", "known_object": "Known-Object"}[self.setting]
        lines = [
            "| Setting | Full | Rare | Non-rare | Mean recall |",
            "|:--|--:|--:|--:|--:|",
            f"| {title} | {_fmt(self.map_full)} | {_fmt(self.map_rare)} | {_fmt(self.map_non_rare)} "
            f"| {_fmt(self.mean_recall)} |",
        ]
        if self.zero_shot is not None:
            z = self.zero_shot
            lines += [
                "",
                "| Zero-shot split | Unseen | Seen | Full |",
                "|:--|--:|--:|--:|",
                f"| {z.split.upper().replace('_', '-')} | {_fmt(z.unseen)} | {_fmt(z.seen)} | {_fmt(z.full)} |",
            ]
        lines += [
            "",
            f"{self.num_classes_evaluated} of {self.n_gt.shape[0]} classes have GT and are averaged; "
            f"{self.num_detections} detections on {self.num_images} images"
            + (f" (top-{self.top_k} per image)." if self.top_k else "."),
        ]
        if self.rare_source == "hico-vocabulary":
            lines.append("Rare / Non-rare classes: from the built-in HICO-DET vocabulary "
                         "(the GT file has no rare / non_rare lists).")
        elif self.rare_source is None:
            lines.append("Rare / Non-rare: n/a (no class lists in the GT file or the configuration).")
        if self.box_offset:
            lines.append(f"Predicted box coordinates shifted by {self.box_offset:+g} before matching.")
        return "\n".join(lines)


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.2f}"


def _mean(values: np.ndarray, classes: Sequence[int] | np.ndarray | None = None) -> float:
    """Mean over ``classes`` (all if None), ignoring NaN (classes without GT)."""
    sel = values if classes is None else values[np.asarray(classes, dtype=np.int64)]
    sel = sel[~np.isnan(sel)]
    return float(sel.mean()) if sel.size else math.nan


def select_top_k(predictions: Predictions, k: int) -> Predictions:
    """Keep the ``k`` highest-scored detections of each image (all classes together).

    Ties keep input order; the survivors stay in input order, so the ranking used for
    matching (which breaks ties by image, then input position) is unaffected.
    GEN-VLKT/HOICLIP evaluate top-100 per image this way.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if len(predictions) == 0:
        return predictions
    by_score = np.argsort(-predictions.score, kind="stable")
    order = by_score[np.argsort(predictions.image[by_score], kind="stable")]
    images = predictions.image[order]
    run_start = np.flatnonzero(np.r_[True, images[1:] != images[:-1]])
    run_len = np.diff(np.r_[run_start, images.size])
    rank = np.arange(images.size) - np.repeat(run_start, run_len)
    keep = np.sort(order[rank < k])
    return predictions.select(keep)


def known_object_filter(gt: GroundTruth, predictions: Predictions) -> Predictions:
    """Drop detections of class ``c`` on images whose GT pairs never show ``c``'s object.

    See the module docstring for how this approximates the official image-level labels.
    Classes with an unknown object (-1) have no GT pairs, so their detections are dropped.
    """
    known = gt.object >= 0
    n_obj = int(max(gt.class_object.max(initial=-1), gt.object.max(initial=-1))) + 1
    present = np.zeros((gt.num_images, max(n_obj, 1)), dtype=bool)
    present[gt.image[known], gt.object[known]] = True
    obj = gt.class_object[predictions.hoi]
    keep = (obj >= 0) & present[predictions.image, np.maximum(obj, 0)]
    return predictions.select(keep)


@functools.lru_cache(maxsize=1)
def _hico_vocabulary() -> Vocabulary:
    return load_vocabulary("hico")


def is_hico_label_space(gt: GroundTruth) -> bool:
    """True if ``gt`` has HICO-DET's 600 classes and every known class object agrees with it.

    With a ``correspondence`` table all objects are known; without one only the objects of
    classes that have GT pairs are (the rest are -1), so this is then mostly the class count.
    """
    vocab = _hico_vocabulary()
    if gt.num_classes != vocab.num_classes:
        return False
    known = gt.class_object >= 0
    return bool(np.array_equal(gt.class_object[known], vocab.hoi_object[known]))


def _class_lists(
    gt: GroundTruth, config: EvalConfig
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Rare and non-rare class indices (either completed from the other) and their source."""
    if config.rare is not None or config.non_rare is not None:
        source: str | None = "config"
        rare = config.rare if config.rare is not None else gt.rare
        non_rare = config.non_rare if config.non_rare is not None else gt.non_rare
    elif gt.rare is not None or gt.non_rare is not None:
        source, rare, non_rare = "gt", gt.rare, gt.non_rare
    elif config.rare_from_vocabulary and is_hico_label_space(gt):
        source, rare, non_rare = "hico-vocabulary", _hico_vocabulary().rare, None
    else:
        return None, None, None
    everything = np.arange(gt.num_classes)
    rare_arr = None if rare is None else np.asarray(rare, dtype=np.int64)
    non_rare_arr = None if non_rare is None else np.asarray(non_rare, dtype=np.int64)
    if rare_arr is not None and non_rare_arr is None:
        non_rare_arr = np.setdiff1d(everything, rare_arr)
    if non_rare_arr is not None and rare_arr is None:
        rare_arr = np.setdiff1d(everything, non_rare_arr)
    for name, arr in (("rare", rare_arr), ("non_rare", non_rare_arr)):
        if arr is not None and arr.size and (arr.min() < 0 or arr.max() >= gt.num_classes):
            raise VocabularyError(f"{name} class list has indices outside 0..{gt.num_classes - 1}")
    return rare_arr, non_rare_arr, source


def evaluate(
    gt: GroundTruth,
    predictions: Predictions,
    config: EvalConfig | None = None,
    progress: bool = False,
) -> EvalResult:
    """Evaluate ``predictions`` against ``gt`` with the official HICO-DET protocol.

    ``progress`` shows a tqdm bar over classes if the AP loop lasts more than half a second.
    Raises :class:`VocabularyError` when predictions or class lists do not fit ``gt``.
    """
    config = config or EvalConfig()
    _check_predictions(gt, predictions)
    rare, non_rare, rare_source = _class_lists(gt, config)
    preds = predictions.shift_boxes(config.box_offset)
    if config.top_k is not None:
        preds = select_top_k(preds, config.top_k)
    if config.setting == "known_object":
        preds = known_object_filter(gt, preds)
    n_gt = gt.n_gt_per_class
    ap, recall = _per_class_ap(match_detections(gt, preds, config.iou_threshold), n_gt, progress)
    zero_shot = None if config.zero_shot is None else _zero_shot(ap, gt.num_classes, config.zero_shot)
    return EvalResult(
        setting=config.setting,
        top_k=config.top_k,
        num_images=gt.num_images,
        num_detections=len(preds),
        per_class_ap=ap,
        per_class_recall=recall,
        n_gt=n_gt,
        map_full=_mean(ap),
        map_rare=math.nan if rare is None else _mean(ap, rare),
        map_non_rare=math.nan if non_rare is None else _mean(ap, non_rare),
        mean_recall=_mean(recall),
        zero_shot=zero_shot,
        rare_source=rare_source,
        box_offset=config.box_offset,
    )


def _check_predictions(gt: GroundTruth, predictions: Predictions) -> None:
    """Predictions must use ``gt``'s classes and images."""
    if not len(predictions):
        return
    if predictions.hoi.min() < 0 or predictions.hoi.max() >= gt.num_classes:
        raise VocabularyError(
            f"predictions {predictions.source} have HOI classes outside 0..{gt.num_classes - 1}"
        )
    if predictions.image.min() < 0 or predictions.image.max() >= gt.num_images:
        raise VocabularyError(f"predictions {predictions.source} refer to images not in {gt.source}")


def _per_class_ap(match: MatchResult, n_gt: np.ndarray, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """AP and recall (percent) of every class from the matched detections; NaN for classes without GT."""
    ap = np.full(n_gt.shape[0], np.nan)
    recall = np.full(n_gt.shape[0], np.nan)
    classes: Any = range(n_gt.shape[0])
    if progress:
        from tqdm import tqdm

        classes = tqdm(classes, desc="AP per class", unit="class", delay=0.5, leave=False)
    for c in classes:
        if n_gt[c] == 0:
            continue
        tp = match.tp[match.class_start[c] : match.class_start[c + 1]]
        ap[c] = 100.0 * voc_ap_11point(tp, ~tp, int(n_gt[c]))
        recall[c] = 100.0 * np.count_nonzero(tp) / n_gt[c]
    return ap, recall


def _zero_shot(ap: np.ndarray, num_classes: int, split: ZeroShotSplit) -> ZeroShotResult:
    """mAP over the split's unseen classes, its seen classes and all classes."""
    if any(not 0 <= c < num_classes for c in split.unseen):
        raise VocabularyError(
            f"zero-shot split '{split.name}' has classes outside 0..{num_classes - 1}"
        )
    seen = split.seen(num_classes)
    return ZeroShotResult(
        split=split.name,
        unseen=_mean(ap, list(split.unseen)),
        seen=_mean(ap, list(seen)),
        full=_mean(ap),
        num_unseen=len(split.unseen),
        num_seen=len(seen),
    )
