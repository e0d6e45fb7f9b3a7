"""The end-to-end network's torch rules (hoi_edge/model/graph_rules.py) agree with the NumPy pipeline's on
random inputs, NMS included (against OpenCV's), so the in-graph post-processing cannot drift from the
shared NumPy one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hoi_edge.core.conventions import LETTERBOX, PROBABILITIES, SOFTMAX_NO_OBJECT, STRETCH
from hoi_edge.core.scoring import ScoringParams
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.model import graph_rules as rules
from hoi_edge.pipeline.postprocess import (
    Instances,
    LabelMap,
    class_probabilities,
    pair_class_prior,
    score_pairs,
    select_instances,
    top_detections,
)
from hoi_edge.pipeline.preprocess import boxes_to_pixels

SEEDS = range(6)
CLASSES = ("person", "cup", "n/a", "horse", "bicycle")
VOCAB = Vocabulary(name="t", verbs=("hold", "ride"), objects=("person", "cup", "horse", "bicycle"),
                   hois=((0, 1), (1, 2), (1, 3), (0, 0), (0, 2)))
PARAMS = ScoringParams(pair_scale=9.0, pair_bias=-1.0, global_scale=7.0, global_bias=-2.0, global_weight=0.3,
                       detector_score_power=2.8)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _detections(rng: np.random.Generator, n: int, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw detector outputs with deliberately overlapping boxes (so NMS has work) and some exact ties."""
    c = len(CLASSES) + (1 if kind == SOFTMAX_NO_OBJECT else 0)
    scores = rng.normal(0, 2, (1, n, c)).astype(np.float32) if kind == SOFTMAX_NO_OBJECT else \
        rng.random((1, n, c)).astype(np.float32)
    scores[0, 1] = scores[0, 0]                             # a tie
    centres = rng.uniform(0.2, 0.8, (3, 2))[rng.integers(0, 3, n)] + rng.normal(0, 0.03, (n, 2))
    boxes = np.concatenate([centres, rng.uniform(0.1, 0.6, (n, 2))], 1).astype(np.float32)[None]
    return scores, boxes, rng.normal(size=(1, n, 3)).astype(np.float32)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind, resize, nms, cap", [
    (SOFTMAX_NO_OBJECT, LETTERBOX, 0.7, None), (SOFTMAX_NO_OBJECT, LETTERBOX, None, None),
    (PROBABILITIES, STRETCH, 0.5, None), (PROBABILITIES, STRETCH, 0.5, 4), (SOFTMAX_NO_OBJECT, LETTERBOX, None, 5)])
def test_instance_selection_matches_numpy_and_opencv_nms(seed, kind, resize, nms, cap) -> None:
    rng = np.random.default_rng(seed)
    scores, boxes, feats = _detections(rng, 24, kind)
    labels = LabelMap.build(CLASSES, VOCAB)
    hw, size, k, thr = (int(rng.integers(50, 400)), int(rng.integers(50, 400))), 128, 6, 0.1
    want = select_instances(scores, boxes, feats, labels, hw, size, k, thr, nms, score_kind=kind, resize=resize,
                            max_candidates=cap)
    relevant = _t(labels.relevant().astype(np.float32))
    have = rules.select_instances(_t(scores[0]), _t(boxes[0]), _t(feats[0]), relevant, torch.tensor(float(hw[0])),
                                  torch.tensor(float(hw[1])), size, k, thr, nms, kind, resize, cap)
    assert want.valid.sum() >= 2                                   # something was selected
    np.testing.assert_array_equal(have["valid"].numpy(), want.valid)
    np.testing.assert_array_equal(have["classes"].numpy(), want.classes)
    np.testing.assert_allclose(have["scores"].numpy(), want.scores, atol=1e-6)
    np.testing.assert_allclose(have["boxes"].numpy(), want.boxes, atol=1e-3)
    np.testing.assert_allclose(have["features"].numpy(), want.features, atol=1e-6)


def test_the_candidate_cap_changes_the_random_cases() -> None:
    """The capped comparisons above are not vacuous: NMS over the best 4 candidates keeps other instances
    than NMS over all of them."""
    labels = LabelMap.build(CLASSES, VOCAB)
    changed = 0
    for seed in SEEDS:
        scores, boxes, feats = _detections(np.random.default_rng(seed), 24, PROBABILITIES)
        args = (scores, boxes, feats, labels, (200, 300), 128, 6, 0.1, 0.5)
        all_ = select_instances(*args, score_kind=PROBABILITIES, resize=STRETCH)
        capped = select_instances(*args, score_kind=PROBABILITIES, resize=STRETCH, max_candidates=4)
        changed += not np.array_equal(all_.boxes, capped.boxes)
    assert changed > 0


@pytest.mark.parametrize("nms", [0.5, None])
def test_a_score_exactly_at_the_threshold_through_both_paths(nms) -> None:
    """Scores 0.9, 0.5 and 0.25 with the threshold at 0.5 (all exact in float32), boxes apart: OpenCV's NMS drops
    a score equal to its threshold, so with NMS both paths keep 1 instance; without NMS both keep 2 (>=)."""
    labels = LabelMap.build(CLASSES, VOCAB)
    scores = np.zeros((1, 3, len(CLASSES)), np.float32)
    scores[0, :, 1] = [0.9, 0.5, 0.25]                                 # class 'cup'
    boxes = np.array([[[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]]], np.float32)
    feats = np.arange(9, dtype=np.float32).reshape(1, 3, 3)
    want = select_instances(scores, boxes, feats, labels, (100, 100), 128, 3, 0.5, nms, score_kind=PROBABILITIES,
                            resize=STRETCH)
    have = rules.select_instances(_t(scores[0]), _t(boxes[0]), _t(feats[0]), _t(labels.relevant().astype(np.float32)),
                                  torch.tensor(100.0), torch.tensor(100.0), 128, 3, 0.5, nms, PROBABILITIES, STRETCH)
    assert int(want.valid.sum()) == (1 if nms is not None else 2)
    np.testing.assert_array_equal(have["valid"].numpy(), want.valid)
    np.testing.assert_allclose(have["scores"].numpy(), want.scores)


def test_nms_removes_something_in_the_random_cases() -> None:
    """The NMS comparison above is not vacuous: with NMS fewer instances survive than without."""
    labels = LabelMap.build(CLASSES, VOCAB)
    removed = 0
    for seed in SEEDS:
        scores, boxes, feats = _detections(np.random.default_rng(seed), 24, SOFTMAX_NO_OBJECT)
        args = (scores, boxes, feats, labels, (200, 300), 128, 24, 0.1)
        removed += select_instances(*args, None).valid.sum() - select_instances(*args, 0.7).valid.sum()
    assert removed > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_box_decoding_and_probabilities_match(seed) -> None:
    rng = np.random.default_rng(seed)
    scores, boxes, _ = _detections(rng, 10, SOFTMAX_NO_OBJECT)
    np.testing.assert_allclose(rules.class_probabilities(_t(scores[0]), SOFTMAX_NO_OBJECT).numpy(),
                               class_probabilities(scores[0], SOFTMAX_NO_OBJECT), atol=1e-6)
    for resize in (LETTERBOX, STRETCH):
        want = boxes_to_pixels(boxes[0], (300, 200), 128, resize)
        for shape in ((), (1, 1)):      # 0-d, and the end-to-end graph's (1,1) (XNNPACK cannot lower 0-d)
            have = rules.boxes_to_pixels(_t(boxes[0]), torch.full(shape, 300.0), torch.full(shape, 200.0), 128, resize)
            np.testing.assert_allclose(have.numpy(), want, atol=1e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_prior_scoring_and_top_n_match(seed) -> None:
    rng = np.random.default_rng(seed)
    k, e, c = 5, 8, VOCAB.num_classes
    valid = rng.random(k) < 0.8
    valid[:2] = True
    human = rng.random(k) < 0.5
    human[0] = True
    objects = np.where(valid, rng.integers(0, 4, k), -1)
    inst = Instances(boxes=np.zeros((k, 4), np.float32), scores=(rng.random(k) * valid).astype(np.float32),
                     classes=np.zeros(k, np.int64), objects=objects, human=human & valid, valid=valid,
                     features=np.zeros((k, 1), np.float32))
    unit = lambda x: (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    pair, glob, text = unit(rng.normal(size=(k * k, e))), unit(rng.normal(size=(1, e))), unit(rng.normal(size=(c, e)))
    want_prior = pair_class_prior(inst, VOCAB.hoi_object)
    have_prior = rules.pair_class_prior(_t(valid.astype(np.float32)), _t((human & valid).astype(np.float32)),
                                        _t(objects), _t(VOCAB.hoi_object))
    np.testing.assert_array_equal(have_prior.numpy(), want_prior)
    assert want_prior.any()
    want = score_pairs(pair, glob, text, inst, VOCAB.hoi_object, PARAMS)
    have = rules.score_pairs(_t(pair), _t(glob), _t(text), _t(inst.scores), have_prior, PARAMS)
    np.testing.assert_allclose(have.numpy(), want, atol=1e-6)
    dets = top_detections(want, inst, VOCAB, max_detections=7)
    top = rules.top_detections(_t(want), 7)
    n = int(top["count"][0])
    assert n == len(dets) > 0
    assert [d.hoi for d in dets] == top["hoi"][:n].tolist()
    np.testing.assert_allclose(top["score"][:n].numpy(), [d.score for d in dets], atol=1e-7)
    assert (top["score"][n:] == 0).all()
