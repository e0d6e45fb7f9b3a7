"""IoU convention and 11-point AP, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hoi_edge.eval import RECALL_THRESHOLDS, elementwise_iou, pairwise_iou, voc_ap_11point


def test_iou_uses_inclusive_pixels() -> None:
    # a covers x,y in 0..9 -> 10x10 = 100 px; b covers 5..14 -> 100 px.
    # Intersection 5..9 -> 5x5 = 25 px; union 100 + 100 - 25 = 175 -> IoU 1/7.
    # (The exclusive convention would give 4*4 / (81 + 81 - 16) = 16/146.)
    iou = pairwise_iou([[0, 0, 9, 9]], [[5, 5, 14, 14]])
    assert iou.shape == (1, 1)
    assert iou[0, 0] == pytest.approx(25 / 175, abs=1e-15)
    assert iou[0, 0] != pytest.approx(16 / 146)


def test_iou_touching_boxes_share_one_pixel_column() -> None:
    # x ranges 0..9 and 9..18 share column 9: 1 x 10 = 10 px; union 100 + 100 - 10 = 190.
    assert elementwise_iou([[0, 0, 9, 9]], [[9, 0, 18, 9]])[0] == pytest.approx(10 / 190, abs=1e-15)
    # One pixel apart: no overlap at all.
    assert elementwise_iou([[0, 0, 9, 9]], [[10, 0, 19, 9]])[0] == 0.0


def test_pairwise_matches_elementwise_and_identity() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, size=(7, 2))
    wh = rng.uniform(1, 40, size=(7, 2))
    boxes = np.hstack([xy, xy + wh])
    m = pairwise_iou(boxes[:3], boxes)
    assert m.shape == (3, 7)
    for i in range(3):
        assert np.allclose(m[i], elementwise_iou(np.repeat(boxes[i : i + 1], 7, axis=0), boxes))
        assert m[i, i] == pytest.approx(1.0)
    assert np.allclose(pairwise_iou(boxes, boxes), pairwise_iou(boxes, boxes).T)


def test_iou_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        pairwise_iou([[0, 0, 1]], [[0, 0, 1, 1]])


def test_ap_two_gt_tp_fp_tp() -> None:
    # 2 GT; ranked TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # t = 0, .1, .2, .3, .4, .5 (6 points): max precision at recall >= t is 1.
    # t = .6, .7, .8, .9, 1 (5 points): only the third rank qualifies, 2/3.
    # AP = (6 * 1 + 5 * 2/3) / 11 = 28/33.
    assert voc_ap_11point([1, 0, 1], [0, 1, 0], 2) == pytest.approx(28 / 33, abs=1e-15)
    # All-point (VOC2010) AP would be 1/2 * 1 + 1/2 * 2/3 = 5/6: we must not compute that.
    assert voc_ap_11point([1, 0, 1], [0, 1, 0], 2) != pytest.approx(5 / 6)


def test_ap_three_gt_with_interpolation() -> None:
    # 3 GT; ranked TP, FP, FP, TP, TP -> precision 1, 1/2, 1/3, 1/2, 3/5;
    # recall 1/3, 1/3, 1/3, 2/3, 1.
    # t = 0, .1, .2, .3 (4 points): 1 (recall 1/3 >= 0.3).
    # t = .4, .5, .6 (3 points): ranks 4-5 -> max(1/2, 3/5) = 3/5.
    # t = .7, .8, .9, 1 (4 points): rank 5 -> 3/5.
    # AP = (4 + 7 * 3/5) / 11 = 8.2 / 11 = 41/55.
    tp = np.array([1, 0, 0, 1, 1])
    assert voc_ap_11point(tp, 1 - tp, 3) == pytest.approx(41 / 55, abs=1e-15)


def test_ap_missed_gt_caps_recall() -> None:
    # 4 GT, only 2 found, ranked FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/4, 1/2.
    # t = 0 .. .5 (6 points): max over reachable ranks = 2/3; t >= .6 unreachable -> 0.
    # AP = 6 * 2/3 / 11 = 4/11.
    assert voc_ap_11point([0, 1, 1], [1, 0, 0], 4) == pytest.approx(4 / 11, abs=1e-15)


def test_ap_edge_cases() -> None:
    assert voc_ap_11point([1, 1], [0, 0], 2) == 1.0  # exactly, not 1.0000000000000002
    assert voc_ap_11point([], [], 5) == 0.0
    assert math.isnan(voc_ap_11point([], [], 0))
    assert voc_ap_11point([0, 0], [1, 1], 3) == 0.0
    with pytest.raises(ValueError):
        voc_ap_11point([1, 1, 1], [0, 0, 0], 2)


def test_recall_thresholds_are_matlabs_colon() -> None:
    # MATLAB's 0:0.1:1 gives 3*0.1 = 0.30000000000000004 for the 4th point, k/10 elsewhere.
    assert RECALL_THRESHOLDS[3] == 3 * 0.1 and RECALL_THRESHOLDS[3] > 0.3
    others = [k for k in range(11) if k != 3]
    assert RECALL_THRESHOLDS[others].tolist() == [k / 10 for k in others]


def test_ap_recall_exactly_point_three_and_point_six() -> None:
    # 10 GT, 3 TPs: recall reaches 0.3 exactly; the official t = 0.30000000000000004 is not
    # reached, so only t = 0, .1, .2 score 1 -> AP 3/11.
    assert voc_ap_11point([1, 1, 1], [0, 0, 0], 10) == pytest.approx(3 / 11, abs=1e-15)
    # 10 GT, 6 TPs: MATLAB's t = 0.6 is exactly 0.6 (NumPy's arange gives 0.6000000000000001),
    # so all of t = 0 .. .6 are reached (7 points) -> 7/11.
    assert voc_ap_11point([1] * 6, [0] * 6, 10) == pytest.approx(7 / 11, abs=1e-15)
