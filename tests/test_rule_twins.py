"""Rules that need both a NumPy form (the shared runtime glue) and a torch form (in the exported graph,
or in training) agree with each other on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hoi_edge.core.geometry import iou_inclusive, pairwise_iou_continuous
from hoi_edge.core.scoring import clip_logits
from hoi_edge.model.classifier import clip_logits as torch_clip_logits
from hoi_edge.model.interactor import box_iou_xyxy, pair_feasibility
from hoi_edge.pipeline.postprocess import Instances, feasible_pairs, pair_class_prior

SEEDS = range(5)


def _instances(rng: np.random.Generator, k: int) -> Instances:
    valid = rng.random(k) < 0.7
    return Instances(boxes=np.zeros((k, 4), np.float32), scores=rng.random(k).astype(np.float32),
                     classes=np.zeros(k, np.int64), objects=rng.integers(-1, 4, k), human=rng.random(k) < 0.5,
                     valid=valid, features=np.zeros((k, 2), np.float32))


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 500, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(0, 200, (n, 2))], 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_feasible_pairs_numpy_and_torch_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 9))
    inst = _instances(rng, k)
    want = feasible_pairs(inst)
    have = pair_feasibility(torch.from_numpy(inst.valid[None].astype(np.float32)),
                            torch.from_numpy(inst.human[None].astype(np.float32)))[0].numpy()
    np.testing.assert_array_equal(have, want)


@pytest.mark.parametrize("seed", SEEDS)
def test_continuous_iou_numpy_and_torch_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = _boxes(rng, 7), _boxes(rng, 5)
    a[0, 2:] = a[0, :2]                                   # a degenerate box: IoU 0 in both
    want = pairwise_iou_continuous(a, b)
    have = box_iou_xyxy(torch.from_numpy(a)[:, None, :].expand(-1, 5, -1),
                        torch.from_numpy(b)[None, :, :].expand(7, -1, -1)).numpy()
    assert (want > 0).any() and (want == 0).any()        # both overlapping and disjoint pairs were compared
    np.testing.assert_allclose(have, want, atol=1e-6)


def test_the_two_iou_conventions_differ_by_the_inclusive_pixel() -> None:
    """A 10x10-pixel box in the inclusive convention is a 9x9 box in continuous coordinates."""
    a, b = np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[5.0, 0.0, 14.0, 9.0]])
    assert iou_inclusive(a, b)[0] == pytest.approx(50 / 150)
    assert pairwise_iou_continuous(a, b)[0, 0] == pytest.approx(36 / 126)


@pytest.mark.parametrize("seed", SEEDS)
def test_clip_logits_numpy_and_torch_agree(seed: int) -> None:
    rng = np.random.default_rng(seed)
    emb, text = rng.standard_normal((6, 16)), rng.standard_normal((4, 16))
    scale, bias = float(rng.uniform(1, 100)), float(rng.normal())
    want = clip_logits(emb, text, scale, bias)
    have = torch_clip_logits(torch.from_numpy(emb), torch.from_numpy(text), scale, bias).numpy()
    np.testing.assert_allclose(have, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_object_prior_keeps_feasible_pairs_of_the_detected_object(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 7))
    inst, hoi_object = _instances(rng, k), rng.integers(0, 4, 9)
    prior = pair_class_prior(inst, hoi_object).reshape(k, k, -1)
    for i in range(k):
        for j in range(k):
            feasible = inst.valid[i] and inst.human[i] and inst.valid[j] and i != j
            np.testing.assert_array_equal(prior[i, j], feasible & (hoi_object == inst.objects[j]))
