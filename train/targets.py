"""Training targets: which candidate pairs of the detected instances are which HOI classes.

Association is UPT's rule: candidate pair (human i, object j) is positive for class c when a
GT pair of class c overlaps it with IoU >= 0.5 on the human box *and* on the object box.
All arrays are NumPy and row-major over the K*K candidate pairs, like :mod:`hoi_edge.pipeline.postprocess`.
IoU is continuous (``w = x2 - x1``; :mod:`hoi_edge.core.geometry` says why), as in UPT.

GT boxes as extra instances (:func:`add_gt_instances`, on by default in training): a frozen
detector misses some annotated people/objects, and without an instance there is no candidate
pair and so no positive. Each missed GT box is added with score 1 and the DETR query feature
of the query whose box overlaps it best, the same kind of feature the head sees at test time.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from hoi_edge.core.geometry import pairwise_iou_continuous as box_iou
from hoi_edge.data.hico_json import HicoImage
from hoi_edge.pipeline.postprocess import Instances, LabelMap, feasible_pairs, pair_class_prior
from hoi_edge.pipeline.preprocess import LETTERBOX, boxes_to_pixels

MATCH_IOU = 0.5


def query_boxes_xyxy(boxes: np.ndarray, image_hw: tuple[int, int], letterbox_size: int,
                     resize: str = LETTERBOX) -> np.ndarray:
    """Detector boxes (Q,4) cx,cy,w,h of the network input -> (Q,4) x1,y1,x2,y2 image pixels: the same rule
    as select_instances (:func:`hoi_edge.pipeline.preprocess.boxes_to_pixels`)."""
    return boxes_to_pixels(boxes, image_hw, letterbox_size, resize)


def add_gt_instances(inst: Instances, ann: HicoImage, query_boxes: np.ndarray, query_features: np.ndarray,
                     labels: LabelMap, iou: float = MATCH_IOU) -> Instances:
    """Add every GT human/object box no kept instance of its kind covers (IoU >= ``iou``).

    A missed box takes a free slot, else the slot of the lowest-scoring detection that
    covers no GT box; when neither exists it is left out (K is fixed by the exported head).
    """
    out = replace(inst, **{f: getattr(inst, f).copy() for f in
                           ("boxes", "scores", "classes", "objects", "human", "valid", "features")})
    person_object = int(labels.to_object[labels.person_class])
    gts = [(b, True, person_object) for b in ann.boxes_h]
    gts += [(b, o == person_object and person_object >= 0, int(o)) for b, o in zip(ann.boxes_o, ann.object)]
    injected = np.zeros(out.valid.size, bool)
    for box, human, obj in gts:
        if _covered(out, box, human, obj, iou).any():
            continue
        slot = _free_slot(out, injected, gts, iou)
        if slot < 0:
            continue
        best_query = int(box_iou(box[None], query_boxes)[0].argmax())
        cls = labels.person_class if human else int(np.flatnonzero(labels.to_object == obj)[0])
        out.boxes[slot], out.scores[slot], out.classes[slot] = box, 1.0, cls
        out.objects[slot], out.human[slot], out.valid[slot] = obj, human, True
        out.features[slot] = query_features[best_query]
        injected[slot] = True
    return out


def _covered(inst: Instances, box: np.ndarray, human: bool, obj: int, iou: float) -> np.ndarray:
    """(K,) bool: valid instances of the GT box's kind that overlap it enough."""
    kind = inst.human if human else (inst.objects == obj) & ~inst.human
    return inst.valid & kind & (box_iou(inst.boxes, box[None])[:, 0] >= iou)


def _free_slot(inst: Instances, injected: np.ndarray, gts: list, iou: float) -> int:
    free = np.flatnonzero(~inst.valid)
    if free.size:
        return int(free[0])
    useful = injected.copy()
    for box, human, obj in gts:
        useful |= _covered(inst, box, human, obj, iou)
    spare = np.flatnonzero(~useful)
    return int(spare[np.argmin(inst.scores[spare])]) if spare.size else -1


def pair_targets(inst: Instances, ann: HicoImage, num_classes: int, iou: float = MATCH_IOU) -> np.ndarray:
    """(K*K, C) multi-label targets: 1 where a GT pair of that class matches the candidate pair."""
    k = inst.valid.size
    target = np.zeros((k * k, num_classes), np.float32)
    if ann.num_pairs == 0:
        return target
    hit_h = box_iou(inst.boxes, ann.boxes_h) >= iou                    # (K,N): instance i covers GT human n
    hit_o = box_iou(inst.boxes, ann.boxes_o) >= iou                    # (K,N): instance j covers GT object n
    match = (hit_h[:, None, :] & hit_o[None, :, :]).reshape(k * k, -1)  # (K*K,N)
    match &= feasible_pairs(inst)[:, None]
    rows, gt = np.nonzero(match)
    target[rows, ann.hoi[gt]] = 1.0
    return target


def pair_class_mask(inst: Instances, hoi_object: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """(K*K, C) bool: the (pair, class) entries that get a loss.

    The entries test-time scoring can give a score (:func:`hoi_edge.pipeline.postprocess.pair_class_prior`:
    feasible pairs, classes of the pair's detected object), of seen classes only (``seen`` (C,) bool).
    """
    mask = pair_class_prior(inst, hoi_object)
    return mask & seen[None, :] if seen is not None else mask


def image_targets(ann: HicoImage, num_classes: int) -> np.ndarray:
    """(C,) multi-hot: the HOI classes present in the image (targets of the global CLIP branch)."""
    target = np.zeros(num_classes, np.float32)
    target[ann.hoi] = 1.0
    return target
