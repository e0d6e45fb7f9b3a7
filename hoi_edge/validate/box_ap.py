"""Box AP of a candidate's detector instances against a reference's, the reference taken as pseudo ground truth.

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
