"""The pipeline's NumPy rules (:mod:`hoi_edge.pipeline.postprocess`, :mod:`hoi_edge.pipeline.preprocess`) in torch, with static
shapes, for the end-to-end network (:mod:`hoi_edge.model.end_to_end`): class probabilities, box decoding,
instance selection (score threshold, class-wise greedy NMS, top-K), the object prior, score integration
and the top-N triplets.

Each function here is the torch twin of one NumPy function and reuses the torch forms that already exist
(:func:`hoi_edge.model.interactor.pair_feasibility`, :func:`hoi_edge.model.interactor.box_iou_xyxy`,
:func:`hoi_edge.model.classifier.clip_logits`). ``tests/test_graph_rules.py`` checks every pair on random
inputs (NMS against OpenCV's), so the two forms cannot drift apart unnoticed.

Everything is batch 1 and written with export-friendly ops only: no ``sort`` (a stable descending order
is built from pairwise comparisons), no data-dependent shapes, no ``nonzero``.
"""

from __future__ import annotations

import torch

from hoi_edge.core.conventions import LETTERBOX, PROBABILITIES, SOFTMAX_NO_OBJECT, STRETCH
from hoi_edge.core.scoring import ScoringParams
from hoi_edge.model.classifier import clip_logits
from hoi_edge.model.interactor import box_iou_xyxy, pair_feasibility


def class_probabilities(scores: torch.Tensor, score_kind: str) -> torch.Tensor:
    """(N, C') raw detector scores -> (N, C); twin of :func:`hoi_edge.pipeline.postprocess.class_probabilities`."""
    if score_kind == SOFTMAX_NO_OBJECT:
        return scores.float().softmax(-1)[:, :-1]
    if score_kind == PROBABILITIES:
        return scores.float()
    raise ValueError(f"unknown score kind {score_kind!r}")


def boxes_to_pixels(boxes: torch.Tensor, height: torch.Tensor, width: torch.Tensor, input_size: int,
                    resize: str = LETTERBOX) -> torch.Tensor:
    """(N,4) cxcywh in 0..1 of the input -> (N,4) xyxy original pixels, clipped; twin of
    :func:`hoi_edge.pipeline.preprocess.boxes_to_pixels` (``height``/``width``: float tensors of one element, 0-d or
    (1,1): the end-to-end graph keeps them (1,1) because XNNPACK's layout pass cannot take 0-d quantized inputs)."""
    whwh = torch.stack([width, height, width, height], -1).reshape(1, 4)
    if resize == LETTERBOX:
        scale = input_size / torch.maximum(height, width)
        b = boxes * input_size / scale
    elif resize == STRETCH:
        b = boxes * whwh
    else:
        raise ValueError(f"unknown resize mode {resize!r}")
    cx, cy, bw, bh = b.unbind(-1)
    xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
    return torch.minimum(xyxy.clamp(min=0), whwh)


def stable_descending_order(values: torch.Tensor, tie_index: torch.Tensor | None = None) -> torch.Tensor:
    """(N,) -> (N,) long: indices sorting ``values`` descending, ties in index order (NumPy's stable argsort of
    ``-values``; ``tie_index``: the index each element's ties are ordered by, default its position), from
    pairwise comparisons instead of ``sort`` (which not every runtime has)."""
    n = values.shape[0]
    idx = torch.arange(n, device=values.device)
    tie = idx if tie_index is None else tie_index
    before = (values[None, :] > values[:, None]) | \
        ((values[None, :] == values[:, None]) & (tie[None, :] < tie[:, None]))
    rank = before.to(torch.float32).sum(1)                         # position of element i
    onehot = (rank[None, :] == idx[:, None].to(torch.float32))     # [r, i]: element i goes to position r
    return onehot.to(torch.float32).argmax(1)


def greedy_nms(boxes: torch.Tensor, classes: torch.Tensor, candidate: torch.Tensor, iou_threshold: float
               ) -> torch.Tensor:
    """Class-wise greedy NMS over boxes already in descending score order: (N,) float 0/1 of the kept ones.

    A candidate is kept unless a kept, earlier box of its class overlaps it with IoU > ``iou_threshold``
    (continuous IoU; two empty boxes overlap fully, whatever their classes), exactly what ``cv2.dnn.NMSBoxesBatched`` does. The loop is unrolled at export (N steps).
    """
    n = boxes.shape[0]
    iou = box_iou_xyxy(boxes[:, None, :].repeat(1, n, 1), boxes[None, :, :].repeat(n, 1, 1))
    # OpenCV's overlap of two empty boxes (e.g. both clipped to an image edge) is 1 wherever they lie, so a kept
    # empty box suppresses every later empty box, of any class (NMSBoxesBatched's class offset cannot separate them)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(-1)
    both_empty = (area[:, None] + area[None, :]) <= 0
    suppresses = (((iou > iou_threshold) & (classes[:, None] == classes[None, :])) | both_empty).to(torch.float32)
    suppressed = torch.zeros_like(candidate)
    kept = []
    for i in range(n):
        k = candidate[i] * (1.0 - suppressed[i])
        suppressed = torch.maximum(suppressed, k * suppresses[i])
        kept.append(k)
    return torch.stack(kept)


def first_k(keep: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) 0/1 -> the indices of the first ``k`` ones (K,) and whether each slot is filled (K,) bool."""
    position = torch.cumsum(keep, 0)                               # 1-based running count (inclusive)
    slots = torch.arange(1, k + 1, device=keep.device, dtype=torch.float32)
    onehot = ((position[None, :] == slots[:, None]) & (keep[None, :] > 0.5)).to(torch.float32)
    return onehot.argmax(1), onehot.sum(1) > 0.5


def select_instances(scores: torch.Tensor, boxes: torch.Tensor, features: torch.Tensor, relevant: torch.Tensor,
                     height: torch.Tensor, width: torch.Tensor, input_size: int, max_instances: int,
                     score_threshold: float, nms_threshold: float | None, score_kind: str = SOFTMAX_NO_OBJECT,
                     resize: str = LETTERBOX, max_candidates: int | None = None) -> dict[str, torch.Tensor]:
    """Detector outputs of one image (no batch axis) -> K instance slots; twin of
    :func:`hoi_edge.pipeline.postprocess.select_instances`. With ``max_candidates`` M, ``topk`` picks the M best
    candidates first (NanoDet's thousands of anchors), so the unrolled NMS has M steps.

    Returns ``boxes`` (K,4) original pixels, ``scores`` (K,), ``classes`` (K,) long, ``valid`` (K,) bool and
    ``features`` (K,D); empty slots are zeros (class 0), as in the NumPy form.
    """
    probs = class_probabilities(scores, score_kind) * relevant[None, :]
    best, cls = probs.max(1)
    xyxy = boxes_to_pixels(boxes, height, width, input_size, resize)
    candidate = best >= score_threshold
    if nms_threshold is not None:
        candidate = candidate & (best > score_threshold)          # OpenCV's NMS drops scores equal to it
    candidate = candidate.to(torch.float32)
    masked = torch.where(candidate > 0.5, best, torch.full_like(best, -1.0))
    if max_candidates is not None and max_candidates < masked.shape[0]:
        _, top = torch.topk(masked, max_candidates)              # the M best (a tie at the cut: either one)
        order = top[stable_descending_order(masked[top], tie_index=top)]
    else:
        order = stable_descending_order(masked)
    s_box, s_cls, s_cand = xyxy[order], cls[order], candidate[order]
    keep = greedy_nms(s_box, s_cls, s_cand, nms_threshold) if nms_threshold is not None else s_cand
    slot, valid = first_k(keep, max_instances)
    pick = order[slot]
    v = valid.to(torch.float32)
    return {"boxes": xyxy[pick] * v[:, None], "scores": best[pick] * v,
            "classes": torch.where(valid, cls[pick], torch.zeros_like(cls[pick])), "valid": valid,
            "features": features[pick] * v[:, None]}


def pair_class_prior(valid: torch.Tensor, human: torch.Tensor, objects: torch.Tensor, hoi_object: torch.Tensor
                     ) -> torch.Tensor:
    """(K*K, C) bool: feasible pair and class object = the pair's object; twin of
    :func:`hoi_edge.pipeline.postprocess.pair_class_prior` (``valid``/``human`` (K,) float, ``objects`` (K,) long)."""
    k = valid.shape[0]
    feasible = pair_feasibility(valid[None], human[None])[0]
    obj_of_pair = objects.repeat(k)
    return feasible[:, None] & (obj_of_pair[:, None] == hoi_object[None, :])


def score_pairs(pair_emb: torch.Tensor, global_emb: torch.Tensor, text: torch.Tensor, inst_scores: torch.Tensor,
                prior: torch.Tensor, params: ScoringParams) -> torch.Tensor:
    """(K*K, C) final scores; twin of :func:`hoi_edge.pipeline.postprocess.score_pairs` (``prior`` from
    :func:`pair_class_prior`)."""
    pair = torch.sigmoid(clip_logits(pair_emb, text, params.pair_scale, params.pair_bias))
    glob = torch.sigmoid(clip_logits(global_emb.reshape(1, -1), text, params.global_scale, params.global_bias))
    w = params.global_weight
    scores = (1.0 - w) * pair + w * glob
    det = torch.pow(inst_scores[:, None] * inst_scores[None, :], params.detector_score_power).reshape(-1)
    return scores * det[:, None] * prior.to(scores.dtype)


def top_detections(scores: torch.Tensor, max_detections: int) -> dict[str, torch.Tensor]:
    """(K*K, C) -> the best ``max_detections`` entries above 0 (fixed size, highest first); twin of
    :func:`hoi_edge.pipeline.postprocess.top_detections`: ``score``, ``pair`` (subject i * K + object j), ``hoi``
    and ``count`` (how many rows are real; the rest are zeros)."""
    c = scores.shape[1]
    flat = scores.reshape(-1)
    n = min(max_detections, flat.shape[0])
    top, idx = torch.topk(flat, n)
    real = top > 0
    count = real.to(torch.int64).sum().reshape(1)
    zero = torch.zeros_like(idx)
    return {"score": torch.where(real, top, torch.zeros_like(top)), "pair": torch.where(real, idx // c, zero),
            "hoi": torch.where(real, idx % c, zero), "count": count, "real": real}
