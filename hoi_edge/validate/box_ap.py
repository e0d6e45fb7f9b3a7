"""Box AP of a candidate's detector instances against a reference's, the reference taken as pseudo ground truth.

What INT8 costs the detector (:func:`detector_comparison`): the candidate's instances are taken **before the
pipeline's cut** — every class-wise-NMS survivor scoring at least :data:`LOW_THRESHOLD` (0.01), up to
:data:`MAX_DETECTIONS` (COCO's 100) per image — and ranked against the FP32 reference's kept instances (the
pipeline's own score threshold and NMS, up to 100 per image, not the HOI head's top-K: a crowded street frame
holds more people than K). AP then reflects the ranking: a reference instance at 0.21 that INT8 scores 0.19 is
still found, ranked lower. Recall at the pipeline's threshold says what users see: the share of the
reference's kept instances the candidate also keeps (same class, IoU >= 0.5).

What quantization did to the *detector* on real weights, where no box ground truth exists: every instance
the FP32 reference keeps on an image is a ground-truth box of its class; the candidate's (an INT8 artifact's)
kept instances, with their scores, are the detections. AP is COCO's: per class, detections of all images
ranked by score, each matched greedily to the unmatched same-class box it overlaps most (IoU >= t,
continuous coordinates as COCO), precision made monotone and sampled at 101 recall points; the mean over
classes that have ground truth, at IoU 0.5 and averaged over 0.50:0.05:0.95. Computed for persons, for
objects (every other class) and overall. Values are in percent (COCO's convention), so "within 1.0 AP"
means one point.

A group in which the reference has no instance at all has no AP: it is ``None`` ("n/a"), never a vacuous
100 — a candidate cannot pass a check there was nothing to check against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from hoi_edge.core.geometry import pairwise_iou_continuous

IOU_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())   # COCO's 0.50:0.05:0.95
RECALL_POINTS = np.linspace(0.0, 1.0, 101)                                   # COCO's 101-point interpolation
GROUPS = ("persons", "objects", "overall")


@dataclass(frozen=True)
class ImageBoxes:
    """One image's instances: boxes (N,4) x1,y1,x2,y2 pixels, detector class ids (N,), scores (N,)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def above(self, threshold: float) -> "ImageBoxes":
        keep = self.scores >= threshold
        return ImageBoxes(self.boxes[keep], self.classes[keep], self.scores[keep])

    @classmethod
    def from_instances(cls, inst) -> "ImageBoxes":
        """The valid rows of a :class:`hoi_edge.pipeline.postprocess.Instances` (what a pipeline kept)."""
        v = np.asarray(inst.valid, bool)
        return cls(np.asarray(inst.boxes, np.float64)[v], np.asarray(inst.classes, np.int64)[v],
                   np.asarray(inst.scores, np.float64)[v])


@dataclass(frozen=True)
class GroupAP:
    """AP (percent) of one group; None when the reference has no instance of the group (n/a)."""

    ap50: float | None
    ap: float | None               # mean over IoU 0.50:0.05:0.95
    reference_instances: int
    candidate_instances: int


@dataclass(frozen=True)
class BoxAP:
    persons: GroupAP
    objects: GroupAP
    overall: GroupAP

    def to_dict(self) -> dict:
        return asdict(self)


def box_ap(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], person_class: int) -> BoxAP:
    """COCO-style box AP of ``candidate`` against ``reference`` (pseudo ground truth), image by image."""
    if len(candidate) != len(reference):
        raise ValueError(f"candidate has {len(candidate)} images, reference {len(reference)}: they must align")
    groups = {
        "persons": lambda c: c == person_class,
        "objects": lambda c: c != person_class,
        "overall": lambda c: np.ones_like(c, bool),
    }
    return BoxAP(**{name: _group_ap(candidate, reference, keep) for name, keep in groups.items()})


def _group_ap(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], keep) -> GroupAP:
    classes = sorted({int(c) for r in reference for c in r.classes[keep(r.classes)]})
    n_ref = sum(int(keep(r.classes).sum()) for r in reference)
    n_cand = sum(int(keep(c.classes).sum()) for c in candidate)
    if not classes:
        return GroupAP(None, None, n_ref, n_cand)
    per_threshold = np.array([[class_ap(candidate, reference, cls, t) for cls in classes] for t in IOU_THRESHOLDS])
    means = per_threshold.mean(axis=1) * 100.0
    return GroupAP(ap50=float(means[0]), ap=float(means.mean()), reference_instances=n_ref,
                   candidate_instances=n_cand)


def class_ap(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], cls: int, iou: float) -> float:
    """AP (0..1) of one class at one IoU threshold; the class must have reference boxes."""
    gts = [r.boxes[r.classes == cls] for r in reference]
    n_gt = sum(len(g) for g in gts)
    dets = [(float(s), i, b) for i, c in enumerate(candidate)
            for s, b in zip(c.scores[c.classes == cls], c.boxes[c.classes == cls])]
    dets.sort(key=lambda d: -d[0])            # stable: ties keep image order, as COCO's mergesort
    claimed = [np.zeros(len(g), bool) for g in gts]
    tp = np.zeros(len(dets), bool)
    for k, (_, image, box) in enumerate(dets):
        gt = gts[image]
        if not len(gt):
            continue
        overlap = pairwise_iou_continuous(np.asarray(box, np.float64)[None], gt)[0]
        overlap[claimed[image]] = -1.0
        best = int(np.argmax(overlap))
        if overlap[best] >= iou:
            claimed[image][best] = True
            tp[k] = True
    return interpolated_ap(tp, n_gt)


def pooled_ap(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], iou: float = 0.5) -> float | None:
    """AP (0..1) of all classes ranked together (a detection still matches only a box of its own class): every
    reference instance weighs the same, where COCO's mean over classes lets a class seen once weigh as much as
    persons seen a thousand times. The stable signal accuracy-aware INT8 steers by
    (:class:`compress.task_metrics.DetectorAP`); None when the reference has no instance."""
    n_gt = sum(len(r.classes) for r in reference)
    if n_gt == 0:
        return None
    dets = [(float(s), i, int(c), b) for i, cand in enumerate(candidate)
            for s, c, b in zip(cand.scores, cand.classes, cand.boxes)]
    dets.sort(key=lambda d: -d[0])
    claimed = [np.zeros(len(r.classes), bool) for r in reference]
    tp = np.zeros(len(dets), bool)
    for k, (_, image, cls, box) in enumerate(dets):
        ref = reference[image]
        same = ref.classes == cls
        if not same.any():
            continue
        overlap = pairwise_iou_continuous(np.asarray(box, np.float64)[None], ref.boxes)[0]
        overlap[~same | claimed[image]] = -1.0
        best = int(np.argmax(overlap))
        if overlap[best] >= iou:
            claimed[image][best] = True
            tp[k] = True
    return interpolated_ap(tp, n_gt)


def interpolated_ap(tp: Iterable[bool], n_gt: int) -> float:
    """COCO's 101-point interpolated AP of a score-ranked list of true/false positives."""
    tp = np.asarray(list(tp), bool)
    if n_gt <= 0:
        raise ValueError("AP needs at least one ground-truth box")
    if not tp.size:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, tp.size + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]      # monotone non-increasing envelope
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(idx < precision.size, precision[np.minimum(idx, precision.size - 1)], 0.0)
    return float(sampled.mean())


# ------------------------------------------------------------------ before the cut: what INT8 costs

LOW_THRESHOLD = 0.01          # candidates scored down to here (COCO evaluations use 0.001-0.05)
MAX_DETECTIONS = 100          # per image, after NMS (COCO's maxDets)
MAX_NMS_CANDIDATES = 1000     # best candidates entering NMS at the low threshold (upstream NanoDet's nms_pre)


def detector_instances(spec, labels, outputs: Sequence[np.ndarray], image_hw: tuple[int, int],
                       threshold: float | None = None) -> ImageBoxes:
    """One image's detector ``outputs`` (scores, boxes, features) as instances: the pipeline's class choice,
    box mapping and class-wise NMS, every survivor scoring at least ``threshold`` (default
    :data:`LOW_THRESHOLD`), up to :data:`MAX_DETECTIONS`. With ``threshold=spec.box_score_threshold`` these are
    the instances the pipeline keeps before its top-K (greedy NMS never lets a lower score suppress a
    higher one, so the low-threshold set filtered at the pipeline threshold is the same set)."""
    from hoi_edge.pipeline.postprocess import select_instances

    low = LOW_THRESHOLD if threshold is None else threshold
    candidates = max(MAX_NMS_CANDIDATES, spec.nms_candidates or 0) if spec.nms_candidates else None
    inst = select_instances(*outputs[:3], labels, image_hw, spec.detector_size, MAX_DETECTIONS, low,
                            spec.nms_threshold, score_kind=spec.detector_score_kind, resize=spec.detector_resize,
                            max_candidates=candidates)
    return ImageBoxes.from_instances(inst)


def recall_at(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], threshold: float,
              iou: float = 0.5) -> float | None:
    """Share (percent) of the reference's instances that a candidate instance scoring >= ``threshold`` matches
    (same class, IoU >= ``iou``, one to one, highest scores first); None when the reference has none."""
    found = total = 0
    for cand, ref in zip(candidate, reference, strict=True):
        total += len(ref.classes)
        kept = cand.above(threshold)
        claimed = np.zeros(len(ref.classes), bool)
        for k in np.argsort(-kept.scores, kind="stable"):
            same = ref.classes == kept.classes[k]
            if not same.any():
                continue
            overlap = pairwise_iou_continuous(kept.boxes[k][None], ref.boxes)[0]
            overlap[~same | claimed] = -1.0
            best = int(np.argmax(overlap))
            if overlap[best] >= iou:
                claimed[best] = True
        found += int(claimed.sum())
    return None if total == 0 else 100.0 * found / total


@dataclass(frozen=True)
class DetectorComparison:
    """:func:`detector_comparison`'s result: box AP before the cut, and recall at the pipeline's threshold."""

    box_ap: BoxAP
    recall: float | None              # percent of the reference's kept instances kept by the candidate
    threshold: float                  # the pipeline's score threshold both are cut at for the recall

    def to_dict(self) -> dict:
        return {"box_ap": self.box_ap.to_dict(), "recall": self.recall, "threshold": self.threshold,
                "low_threshold": LOW_THRESHOLD, "max_detections": MAX_DETECTIONS}


def detector_comparison(candidate: Sequence[ImageBoxes], reference: Sequence[ImageBoxes], person_class: int,
                        threshold: float) -> DetectorComparison:
    """Both sides as :func:`detector_instances` gives them at the low threshold: the candidate's ranked whole,
    the reference's cut at the pipeline's ``threshold`` (its kept instances)."""
    kept = [r.above(threshold) for r in reference]
    return DetectorComparison(box_ap(candidate, kept, person_class), recall_at(candidate, kept, threshold),
                              threshold)
