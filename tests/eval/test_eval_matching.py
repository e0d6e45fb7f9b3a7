"""The official matching rule: min(human, object) IoU, best GT only, first claim wins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_test_helpers import H1, H2, O1, O2, make_gt, make_preds

from hoi_edge.eval import (
    EvalConfig,
    GroundTruth,
    Predictions,
    evaluate,
    match_detections,
    match_detections_reference,
    read_predictions,
)


def tp_by_detection(gt: GroundTruth, preds: Predictions) -> np.ndarray:
    m = match_detections(gt, preds)
    out = np.zeros(len(preds), dtype=bool)
    out[m.order] = m.tp
    return out


def test_duplicate_detection_is_false_positive() -> None:
    gt = make_gt([(0, 0, H1, O1), (0, 0, H2, O2)])
    dup = make_preds([(0, 0, 0.9, H1, O1), (0, 0, 0.8, H1, O1), (0, 0, 0.7, H2, O2)])
    assert tp_by_detection(gt, dup).tolist() == [True, False, True]
    # TP, FP, TP on 2 GT -> (6 * 1 + 5 * 2/3) / 11 = 28/33 (see test_ap_two_gt_tp_fp_tp).
    assert evaluate(gt, dup).per_class_ap[0] == pytest.approx(100 * 28 / 33, abs=1e-12)
    no_dup = make_preds([(0, 0, 0.9, H1, O1), (0, 0, 0.7, H2, O2)])
    assert evaluate(gt, no_dup).per_class_ap[0] == 100.0


def test_no_fallback_to_second_best_gt() -> None:
    # g1 and g2 share the object box; their human boxes overlap with IoU 0.8.
    g1_h, g2_h = [0, 0, 99, 99], [0, 0, 99, 79]
    gt = make_gt([(0, 0, g1_h, O1), (0, 0, g2_h, O1)])
    # d2's human box [0,0,99,95] has IoU 9600/10000 = 0.96 with g1 and 8000/9600 = 0.83 with g2:
    # both pass 0.5, g1 is best but already claimed by d1, so d2 is a FP (no fallback to g2).
    preds = make_preds([(0, 0, 0.9, g1_h, O1), (0, 0, 0.8, [0, 0, 99, 95], O1)])
    assert tp_by_detection(gt, preds).tolist() == [True, False]
    assert match_detections_reference(gt, preds).tolist() == [True, False]
    # TP, FP on 2 GT: recall 1/2 -> 6 points of precision 1 -> 6/11 (a fallback would give 1).
    assert evaluate(gt, preds).per_class_ap[0] == pytest.approx(100 * 6 / 11, abs=1e-12)


def test_min_of_human_and_object_iou() -> None:
    gt = make_gt([(0, 0, H1, O1)])
    # Human box identical (IoU 1) but object box shifted by 60 px: 40*100 / (2*10000 - 4000) = 0.25.
    preds = make_preds([(0, 0, 0.9, H1, [260, 0, 359, 99])])
    assert tp_by_detection(gt, preds).tolist() == [False]


def test_threshold_is_inclusive() -> None:
    gt = make_gt([(0, 0, [0, 0, 9, 9], O1)])
    # Human IoU = 100 / 200 = 0.5 exactly (inclusive pixels): a match, since the rule is >= 0.5.
    preds = make_preds([(0, 0, 0.9, [0, 0, 9, 19], O1)])
    assert tp_by_detection(gt, preds).tolist() == [True]


def test_only_same_class_and_same_image_gt_count() -> None:
    gt = make_gt([(0, 0, H1, O1), (1, 1, H1, O1)], n_images=2)
    preds = make_preds([(1, 0, 0.9, H1, O1), (0, 1, 0.9, H1, O1), (0, 0, 0.1, H1, O1)])
    assert tp_by_detection(gt, preds).tolist() == [False, False, True]


def test_equal_scores_keep_input_order() -> None:
    gt = make_gt([(0, 0, H1, O1)])
    near = [1, 1, 100, 100]  # IoU with H1 still > 0.5, but the first detection wins the tie
    preds = make_preds([(0, 0, 0.5, near, O1), (0, 0, 0.5, H1, O1)])
    assert tp_by_detection(gt, preds).tolist() == [True, False]


@pytest.mark.parametrize("gt_image", [0, 1])
@pytest.mark.parametrize("img1_line_first", [False, True])
def test_equal_scores_across_images_rank_by_image_index(
    tmp_path: Path, gt_image: int, img1_line_first: bool
) -> None:
    # One GT pair (on image gt_image); two detections with the same score and the same boxes,
    # one per image, so exactly the one on gt_image is a TP. The official code lists
    # detections image by image and sorts stably, so image 0's detection ranks first
    # whichever line of the file comes first.
    gt = make_gt([(gt_image, 0, H1, O1)], n_images=2)
    det = {"hoi": 0, "score": 0.5, "human_box": H1, "object_box": O1}
    lines = [json.dumps({"image": f"img{i}.jpg", "detections": [det]}) for i in (0, 1)]
    if img1_line_first:
        lines.reverse()
    path = tmp_path / "preds.jsonl"
    path.write_text("\n".join(lines) + "\n")
    preds = read_predictions(path, gt)
    assert preds.image.tolist() == ([1, 0] if img1_line_first else [0, 1])
    m = match_detections(gt, preds)
    assert preds.image[m.order].tolist() == [0, 1]
    np.testing.assert_array_equal(tp_by_detection(gt, preds), match_detections_reference(gt, preds))
    # GT on image 1: ranked FP (image 0), TP (image 1); 1 GT -> every recall threshold is
    # reached only at rank 2, precision 1/2 -> AP 50. (File-order ties would give 100 for
    # one of the two line orders.) GT on image 0: TP first -> AP 100.
    expected = 50.0 if gt_image == 1 else 100.0
    assert evaluate(gt, preds).per_class_ap[0] == pytest.approx(expected, abs=1e-12)


def test_ranking_is_over_the_whole_set_not_per_image() -> None:
    gt = make_gt([(0, 0, H1, O1), (1, 0, H1, O1)], n_images=2)
    # Ranked: FP (img0, .9), TP (img1, .8), TP (img0, .7): precision 0, 1/2, 2/3; recall 0, 1/2, 1.
    # Every threshold is reached only by ranks 2-3 or 3 -> max precision 2/3 -> AP 2/3.
    preds = make_preds([(0, 0, 0.7, H1, O1), (0, 0, 0.9, H2, O2), (1, 0, 0.8, H1, O1)])
    assert evaluate(gt, preds).per_class_ap[0] == pytest.approx(100 * 2 / 3, abs=1e-12)


def _random_case(seed: int) -> tuple[GroundTruth, Predictions]:
    rng = np.random.default_rng(seed)
    n_images, n_classes = 25, 4
    pairs = []
    for img in range(n_images):
        # Few anchor boxes per image so GT pairs overlap each other (ties, near-duplicates).
        anchors = rng.uniform(0, 60, size=(3, 2))
        for _ in range(rng.integers(0, 7)):
            a, b = rng.choice(3, size=2)
            h = np.r_[anchors[a], anchors[a] + rng.uniform(20, 40, 2)].round()
            o = np.r_[anchors[b], anchors[b] + rng.uniform(20, 40, 2)].round()
            pairs.append((img, int(rng.integers(n_classes)), h.tolist(), o.tolist()))
    gt = make_gt(pairs, n_images=n_images, num_classes=n_classes)
    dets = []
    for img, hoi, h, o in pairs:
        for _ in range(rng.integers(0, 4)):  # 0-3 noisy copies of each GT pair
            cls = hoi if rng.random() < 0.8 else int(rng.integers(n_classes))
            dets.append((img, cls, float(rng.integers(0, 10)) / 10,  # coarse scores -> many ties
                         (np.asarray(h) + rng.normal(0, 6, 4)).tolist(),
                         (np.asarray(o) + rng.normal(0, 6, 4)).tolist()))
    for _ in range(60):  # distractors
        img = int(rng.integers(n_images))
        xy = rng.uniform(0, 80, size=(2, 2))
        dets.append((img, int(rng.integers(n_classes)), float(rng.integers(0, 10)) / 10,
                     np.r_[xy[0], xy[0] + 30].tolist(), np.r_[xy[1], xy[1] + 30].tolist()))
    order = rng.permutation(len(dets))
    return gt, make_preds([dets[i] for i in order])


@pytest.mark.parametrize("seed", range(8))
def test_vectorised_matching_equals_reference_loop(seed: int) -> None:
    gt, preds = _random_case(seed)
    expected = match_detections_reference(gt, preds)
    got = tp_by_detection(gt, preds)
    assert expected.any() and (~expected).any()  # the case exercises both outcomes
    np.testing.assert_array_equal(got, expected)


def test_match_result_is_ranked_by_class_then_score() -> None:
    gt, preds = _random_case(123)
    m = match_detections(gt, preds)
    assert sorted(m.order.tolist()) == list(range(len(preds)))
    assert np.all(np.diff(m.hoi) >= 0)
    for c in range(gt.num_classes):
        idx = m.order[m.class_start[c] : m.class_start[c + 1]]
        assert np.all(np.diff(preds.score[idx]) <= 0)
        assert np.all(m.hoi[m.class_start[c] : m.class_start[c + 1]] == c)
        # Ties: image index ascending, then input position ascending.
        keys = list(zip((-preds.score[idx]).tolist(), preds.image[idx].tolist(), idx.tolist()))
        assert keys == sorted(keys)
    # A GT pair is claimed at most once.
    claimed = m.best_gt[m.tp]
    assert len(set(claimed.tolist())) == claimed.size


def test_empty_inputs() -> None:
    gt = make_gt([(0, 0, H1, O1)])
    res = evaluate(gt, make_preds([]), EvalConfig())
    assert res.per_class_ap[0] == 0.0 and res.map_full == 0.0
    empty_gt = make_gt([], n_images=1)
    m = match_detections(empty_gt, make_preds([(0, 0, 0.9, H1, O1)]))
    assert m.tp.tolist() == [False]


def test_vectorised_matching_equals_reference_on_real_annotations(full_gt: GroundTruth) -> None:
    # The first 200 real test images; detections are jittered copies of their GT pairs (some
    # with another class) plus hard negatives near GT pairs, all with coarse, tied scores.
    rng = np.random.default_rng(7)
    sel = full_gt.image < 200
    gt = GroundTruth.from_arrays(full_gt.filenames[:200], full_gt.num_classes, full_gt.image[sel],
                                 full_gt.hoi[sel], full_gt.boxes_h[sel], full_gt.boxes_o[sel],
                                 object=full_gt.object[sel], class_object=full_gt.class_object)
    src = rng.integers(0, gt.num_pairs, 6 * gt.num_pairs)
    sigma = rng.choice([0.05, 0.3], src.size)[:, None]

    def jitter(b: np.ndarray) -> np.ndarray:
        wh = b[:, 2:] - b[:, :2] + 1
        return b + rng.normal(0, 1, b.shape) * sigma * np.hstack([wh, wh])

    other_class = gt.hoi[rng.integers(0, gt.num_pairs, src.size)]
    hoi = np.where(rng.random(src.size) < 0.7, gt.hoi[src], other_class)
    preds = Predictions.from_arrays(gt.image[src], hoi, rng.integers(0, 20, src.size) / 20,
                                    jitter(gt.boxes_h[src]), jitter(gt.boxes_o[src]))
    expected = match_detections_reference(gt, preds)
    assert 0.05 < expected.mean() < 0.95
    np.testing.assert_array_equal(tp_by_detection(gt, preds), expected)
