"""NumPy glue between the export units: instance selection after the detector and HOI scoring
after the head. Every backend (PyTorch, OpenVINO, ONNX Runtime, ExecuTorch) shares it, so
they can only differ in what the networks compute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from hoi_edge.core.conventions import PROBABILITIES, SCORE_KINDS, SOFTMAX_NO_OBJECT
from hoi_edge.core.errors import VocabularyError
from hoi_edge.core.scoring import ScoringParams, clip_logits  # noqa: F401  (ScoringParams: re-exported, its old home)
from hoi_edge.core.suggest import closest
from hoi_edge.data.vocabulary import Vocabulary, normalize_name
from hoi_edge.pipeline.preprocess import LETTERBOX, boxes_to_pixels

PERSON = "person"


@dataclass(frozen=True)
class HOIDetection:
    """One <human, verb, object> triplet in original image pixels (x1, y1, x2, y2)."""

    human_box: tuple[float, float, float, float]
    object_box: tuple[float, float, float, float]
    object_label: str
    object_index: int
    verb: str
    verb_index: int
    hoi: int
    hoi_name: str
    score: float
    human_score: float
    object_score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class LabelMap:
    """Detector class id -> vocabulary object index (-1: irrelevant class) and the person class id."""

    to_object: np.ndarray
    person_class: int

    @classmethod
    def build(cls, detector_classes: list[str] | tuple[str, ...], vocab: Vocabulary) -> "LabelMap":
        names = [normalize_name(n) for n in detector_classes]
        if PERSON not in names:
            raise VocabularyError("the detector has no 'person' class, so it cannot find humans")
        missing = [o for o in vocab.objects if o not in names]
        if missing:
            known = sorted(set(names) - {"n/a"})
            wrong = ", ".join(f"{o!r}" + (f" (did you mean {near!r}?)" if (near := closest(o, known)) else "")
                              for o in missing)
            raise VocabularyError(f"{vocab.describe()} has objects the detector cannot find: {wrong}. The "
                                  f"detector's {len(known)} classes: {', '.join(known)}")
        to_object = np.full(len(names), -1, dtype=np.int64)
        for obj_index, obj in enumerate(vocab.objects):
            to_object[names.index(obj)] = obj_index
        return cls(to_object=to_object, person_class=names.index(PERSON))

    def relevant(self) -> np.ndarray:
        keep = self.to_object >= 0
        keep[self.person_class] = True
        return keep


@dataclass
class Instances:
    """K kept detections (padded; ``valid`` marks real ones), boxes in original image pixels."""

    boxes: np.ndarray      # (K,4) float32 xyxy
    scores: np.ndarray     # (K,)
    classes: np.ndarray    # (K,) detector class ids
    objects: np.ndarray    # (K,) vocabulary object index, -1 if none
    human: np.ndarray      # (K,) bool
    valid: np.ndarray      # (K,) bool
    features: np.ndarray   # (K,Dd) float32


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def class_probabilities(scores: np.ndarray, score_kind: str) -> np.ndarray:
    """(N, C') raw detector scores of one image -> (N, C) per-class probabilities."""
    if score_kind == SOFTMAX_NO_OBJECT:
        return softmax(scores.astype(np.float32))[:, :-1]
    if score_kind == PROBABILITIES:
        return scores.astype(np.float32)
    raise ValueError(f"score kind must be one of {SCORE_KINDS}, not {score_kind!r}")


def select_instances(logits: np.ndarray, boxes: np.ndarray, features: np.ndarray, labels: LabelMap,
                     image_hw: tuple[int, int], letterbox_size: int, max_instances: int,
                     score_threshold: float, nms_threshold: float | None,
                     score_kind: str = SOFTMAX_NO_OBJECT, resize: str = LETTERBOX,
                     max_candidates: int | None = None) -> Instances:
    """Detector outputs for one image -> the top-K instances of classes the vocabulary uses.

    Per candidate the best relevant class and its probability (``score_kind``), the score
    threshold, the ``max_candidates`` best of those (all when None), class-wise NMS (skipped when
    ``nms_threshold`` is None), then the K best. Boxes are mapped to original pixels by the input
    transform's rule (``resize``).
    """
    probs = class_probabilities(logits[0], score_kind) * labels.relevant()[None, :]
    classes, scores = probs.argmax(1), probs.max(1)
    xyxy = boxes_to_pixels(boxes[0], image_hw, letterbox_size, resize)
    cand = np.flatnonzero(scores >= score_threshold)
    if max_candidates is not None:
        cand = np.sort(cand[np.argsort(-scores[cand], kind="stable")][:max_candidates])
    if cand.size and nms_threshold is not None:
        xywh = np.concatenate([xyxy[cand, :2], xyxy[cand, 2:] - xyxy[cand, :2]], 1)
        kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores[cand].tolist(), classes[cand].tolist(),
                                       float(score_threshold), float(nms_threshold))
        cand = cand[np.asarray(kept, dtype=np.int64).reshape(-1)]
    order = cand[np.argsort(-scores[cand], kind="stable")][:max_instances]
    n, k = order.size, max_instances
    out = Instances(
        boxes=np.zeros((k, 4), np.float32), scores=np.zeros(k, np.float32), classes=np.zeros(k, np.int64),
        objects=np.full(k, -1, np.int64), human=np.zeros(k, bool), valid=np.zeros(k, bool),
        features=np.zeros((k, features.shape[-1]), np.float32),
    )
    out.boxes[:n], out.scores[:n], out.classes[:n] = xyxy[order], scores[order], classes[order]
    out.objects[:n] = labels.to_object[classes[order]]
    out.human[:n] = classes[order] == labels.person_class
    out.valid[:n] = True
    out.features[:n] = features[0, order]
    return out


def head_inputs(inst: Instances, image_hw: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The hoi_head's instance inputs, batch 1; boxes scaled by the longer image side (keeps aspect)."""
    side = float(max(image_hw))
    return (inst.features[None], (inst.boxes / side)[None].astype(np.float32),
            inst.valid[None].astype(np.float32), inst.human[None].astype(np.float32))


def feasible_pairs(inst: Instances) -> np.ndarray:
    """(K*K,) bool, row-major (subject i, object j): the subject is a human, both valid, i != j."""
    k = inst.valid.size
    ok = (inst.valid & inst.human)[:, None] & inst.valid[None, :] & ~np.eye(k, dtype=bool)
    return ok.reshape(-1)


def score_pairs(pair_emb: np.ndarray, global_emb: np.ndarray, text: np.ndarray, inst: Instances,
                hoi_object: np.ndarray, params: ScoringParams) -> np.ndarray:
    """(K*K, C) final HOI scores: integrate pairwise + global CLIP scores, object prior and detector scores."""
    k = inst.valid.size
    pair = sigmoid(clip_logits(pair_emb.reshape(k * k, -1), text, params.pair_scale, params.pair_bias))
    glob = sigmoid(clip_logits(global_emb.reshape(-1), text, params.global_scale, params.global_bias))
    w = params.global_weight
    scores = (1.0 - w) * pair + w * glob[None, :]
    det = np.power(np.outer(inst.scores, inst.scores), params.detector_score_power).reshape(-1)
    return scores * det[:, None] * pair_class_prior(inst, hoi_object)


def pair_class_prior(inst: Instances, hoi_object: np.ndarray) -> np.ndarray:
    """(K*K, C) bool: the (pair, class) entries that can score, used at test time and for the training loss.

    A feasible pair (:func:`feasible_pairs`) and a class whose object is the pair's detected object
    (the object prior: 'ride horse' is never scored on a detected bicycle).
    """
    obj_of_pair = np.tile(inst.objects, inst.valid.size)          # object j of pair (i, j)
    return feasible_pairs(inst)[:, None] & (obj_of_pair[:, None] == hoi_object[None, :])


def top_detections(scores: np.ndarray, inst: Instances, vocab: Vocabulary, max_detections: int,
                   min_score: float = 0.0) -> list[HOIDetection]:
    """Best ``max_detections`` (pair, class) entries above ``min_score``, highest first."""
    flat = scores.reshape(-1)
    n = min(max_detections, int((flat > min_score).sum()))
    if n == 0:
        return []
    top = np.argpartition(-flat, n - 1)[:n]
    top = top[np.argsort(-flat[top], kind="stable")]
    k, c = inst.valid.size, scores.shape[1]
    out = []
    for idx in top:
        pair, hoi = divmod(int(idx), c)
        i, j = divmod(pair, k)
        verb, obj = vocab.hois[hoi]
        out.append(HOIDetection(
            human_box=tuple(float(v) for v in inst.boxes[i]), object_box=tuple(float(v) for v in inst.boxes[j]),
            object_label=vocab.objects[obj], object_index=obj, verb=vocab.verbs[verb], verb_index=verb,
            hoi=hoi, hoi_name=vocab.hoi_name(hoi), score=float(flat[idx]),
            human_score=float(inst.scores[i]), object_score=float(inst.scores[j]),
        ))
    return out
