"""evaluate(): means, Known-Object, top-k, zero-shot, and behaviour on the full HICO-DET test set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval_test_helpers import H1, H2, O1, O2, make_gt, make_preds
from hoi_edge.errors import VocabularyError
from hoi_edge.eval import (
    EvalConfig,
    GroundTruth,
    Predictions,
    ZeroShotSplit,
    evaluate,
    load_splits,
    predictions_from_groundtruth,
    select_top_k,
)


# --- small crafted cases -----------------------------------------------------------------

def test_classes_without_gt_are_excluded_from_means() -> None:
    gt = make_gt([(0, 0, H1, O1), (0, 1, H2, O2)], num_classes=3)
    preds = make_preds([(0, 0, 0.9, H1, O1), (0, 1, 0.9, H2, O2), (0, 2, 0.9, H1, O1)])
    res = evaluate(gt, preds, EvalConfig(rare=(2,), non_rare=(0, 1)))
    assert res.per_class_ap[:2].tolist() == [100.0, 100.0]
    assert math.isnan(res.per_class_ap[2]) and math.isnan(res.per_class_recall[2])
    assert res.map_full == 100.0  # not 200/3: class 2 has no GT
    assert math.isnan(res.map_rare)
    assert res.map_non_rare == 100.0
    assert res.num_classes_evaluated == 2
    d = res.to_dict()
    assert d["mAP_rare"] is None and d["per_class_ap"][2] is None
    json.dumps(d, allow_nan=False)  # NaN-free, JSON-ready
    assert "n/a" in res.to_markdown()


def test_rare_lists_come_from_config_or_gt_and_complement() -> None:
    gt = make_gt([(0, 0, H1, O1), (0, 1, H2, O2)], num_classes=2)
    preds = make_preds([(0, 0, 0.9, H1, O1)])  # class 0 perfect, class 1 missed
    res = evaluate(gt, preds, EvalConfig(rare=(1,)))  # non-rare = complement = (0,)
    assert (res.map_rare, res.map_non_rare, res.map_full) == (0.0, 100.0, 50.0)
    assert res.mean_recall == 50.0
    no_lists = evaluate(gt, preds)
    assert math.isnan(no_lists.map_rare) and math.isnan(no_lists.map_non_rare)


def _known_object_case() -> tuple[GroundTruth, Predictions]:
    # class c has object c; image0 shows object 0, image1 object 1, image2 object 0 (via class 2,
    # whose object is set to 0 below).
    gt = GroundTruth.from_arrays(
        filenames=["a.jpg", "b.jpg", "c.jpg"], num_classes=3,
        image=[0, 1, 2], hoi=[0, 1, 2], boxes_h=[H1, H1, H1], boxes_o=[O1, O1, O1],
        class_object=[0, 1, 0],
    )
    preds = make_preds([
        (1, 0, 0.9, H1, O1),  # class 0 on an image without object 0: FP, removed by KO
        (0, 0, 0.5, H1, O1),  # TP
        (2, 0, 0.3, H2, O2),  # FP on an image that shows object 0: kept by KO
    ])
    return gt, preds


def test_known_object_removes_fps_on_images_without_the_object() -> None:
    gt, preds = _known_object_case()
    default = evaluate(gt, preds, EvalConfig(setting="default"))
    # Default: FP (.9), TP (.5), FP (.3), 1 GT -> precision at recall 1 is 1/2 -> AP 50.
    assert default.per_class_ap[0] == pytest.approx(50.0, abs=1e-12)
    ko = evaluate(gt, preds, EvalConfig(setting="known_object"))
    # KO: TP (.5), FP (.3) -> AP 100; the FP on image c survives (2 detections left).
    assert ko.per_class_ap[0] == 100.0
    assert ko.num_detections == 2 and ko.setting == "known_object"
    assert EvalConfig(setting="known-object").setting == "known_object"
    with pytest.raises(ValueError):
        EvalConfig(setting="unknown")


def test_top_k_per_image() -> None:
    gt = make_gt([(0, 0, H1, O1), (1, 0, H1, O1)], n_images=2, num_classes=3)
    preds = make_preds([
        (0, 1, 0.9, H1, O1), (0, 2, 0.8, H1, O1), (0, 0, 0.7, H1, O1),  # image 0: TP ranked 3rd
        (1, 0, 0.2, H1, O1),                                              # image 1: TP alone
    ])
    top2 = select_top_k(preds, 2)
    assert top2.score.tolist() == [0.9, 0.8, 0.2]  # survivors keep input order
    r2 = evaluate(gt, preds, EvalConfig(top_k=2))
    # Class 0 keeps only image 1's TP: recall 1/2, precision 1 -> 6/11.
    assert r2.per_class_ap[0] == pytest.approx(100 * 6 / 11, abs=1e-12)
    assert r2.num_detections == 3 and r2.top_k == 2
    assert evaluate(gt, preds, EvalConfig(top_k=3)).per_class_ap[0] == 100.0
    with pytest.raises(ValueError):
        EvalConfig(top_k=0)


def test_top_k_ties_keep_input_order() -> None:
    preds = make_preds([(0, 0, 0.5, H1, O1), (0, 1, 0.5, H1, O1), (0, 2, 0.5, H1, O1)])
    assert select_top_k(preds, 2).hoi.tolist() == [0, 1]


def test_zero_shot_means_on_crafted_predictions() -> None:
    gt = make_gt([(0, 0, H1, O1), (0, 1, H1, O1), (0, 2, H1, O1), (0, 3, H1, O1), (0, 3, H2, O2)],
                 num_classes=4)
    preds = make_preds([
        (0, 0, 0.9, H1, O1), (0, 1, 0.9, H1, O1),                      # classes 0, 1: AP 100
        (0, 3, 0.9, H1, O1), (0, 3, 0.8, H1, O1), (0, 3, 0.7, H2, O2),  # class 3: TP FP TP -> 28/33
    ])                                                                  # class 2: missed -> 0
    res = evaluate(gt, preds, EvalConfig(zero_shot=ZeroShotSplit("test", unseen=(2, 3))))
    z = res.zero_shot
    assert z is not None and (z.num_unseen, z.num_seen) == (2, 2)
    assert z.unseen == pytest.approx((0 + 100 * 28 / 33) / 2, abs=1e-12)
    assert z.seen == 100.0
    assert z.full == pytest.approx((200 + 100 * 28 / 33) / 4, abs=1e-12) == res.map_full
    assert "Unseen" in res.to_markdown()
    with pytest.raises(VocabularyError):
        evaluate(gt, preds, EvalConfig(zero_shot=ZeroShotSplit("bad", unseen=(7,))))


def test_predictions_outside_vocabulary_are_rejected() -> None:
    gt = make_gt([(0, 0, H1, O1)], num_classes=3)
    with pytest.raises(VocabularyError, match="0..2"):
        evaluate(gt, make_preds([(0, 5, 0.9, H1, O1)]))


# --- the full HICO-DET test set ----------------------------------------------------------

def _jittered(gt: GroundTruth, sigma: float, seed: int = 0) -> Predictions:
    """GT pairs with Gaussian corner noise proportional to box size (sigma * width/height)."""
    rng = np.random.default_rng(seed)
    p = predictions_from_groundtruth(gt)

    def jitter(b: np.ndarray) -> np.ndarray:
        size = np.repeat(b[:, 2:] - b[:, :2] + 1, 2, axis=0).reshape(-1, 4)[:, [0, 1, 0, 1]]
        return b + rng.normal(0, 1, b.shape) * sigma * size

    return Predictions.from_arrays(p.image, p.hoi, rng.uniform(0.5, 1.0, len(p)),
                                   jitter(p.boxes_h), jitter(p.boxes_o))


def test_full_set_gt_as_predictions_is_100(full_gt: GroundTruth) -> None:
    assert (full_gt.num_images, full_gt.num_pairs, full_gt.num_classes) == (9658, 33405, 600)
    res = evaluate(full_gt, predictions_from_groundtruth(full_gt))
    assert res.map_full == 100.0 and res.map_rare == 100.0 and res.map_non_rare == 100.0
    assert res.mean_recall == 100.0
    assert res.num_classes_evaluated == 600
    ko = evaluate(full_gt, predictions_from_groundtruth(full_gt), EvalConfig(setting="known_object"))
    assert ko.map_full == 100.0 and ko.num_detections == full_gt.num_pairs


def test_full_set_more_jitter_lowers_map(full_gt: GroundTruth) -> None:
    maps = [evaluate(full_gt, _jittered(full_gt, s)).map_full for s in (0.0, 0.05, 0.1, 0.15, 0.25)]
    assert maps[0] == 100.0
    assert all(a > b for a, b in zip(maps, maps[1:])), maps
    assert maps[-1] < 50.0


def test_full_set_scores_and_drops(full_gt: GroundTruth) -> None:
    rng = np.random.default_rng(1)
    perfect = predictions_from_groundtruth(full_gt)
    # Distractors: one random box pair per GT pair, same class, elsewhere in the image.
    off = rng.uniform(150, 300, size=(full_gt.num_pairs, 1))
    distract = Predictions.from_arrays(perfect.image, perfect.hoi, np.zeros(len(perfect)),
                                       perfect.boxes_h + off, perfect.boxes_o + off)

    def run(tp_score: np.ndarray, fp_score: np.ndarray, keep: np.ndarray | None = None) -> float:
        tp = Predictions.from_arrays(perfect.image, perfect.hoi, tp_score, perfect.boxes_h, perfect.boxes_o)
        if keep is not None:
            tp = tp.select(keep)
        both = Predictions.from_arrays(
            np.r_[tp.image, distract.image], np.r_[tp.hoi, distract.hoi], np.r_[tp.score, fp_score],
            np.r_[tp.boxes_h, distract.boxes_h], np.r_[tp.boxes_o, distract.boxes_o])
        return evaluate(full_gt, both).map_full

    n = full_gt.num_pairs
    ordered = run(rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n))
    assert ordered == 100.0  # every TP outranks every FP
    shuffled = run(rng.uniform(0, 1, n), rng.uniform(0, 1, n))
    inverted = run(rng.uniform(0.0, 0.4, n), rng.uniform(0.6, 1.0, n))
    assert ordered > shuffled > inverted
    drops = [run(rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.4, n), rng.random(n) >= f)
             for f in (0.1, 0.3, 0.6)]
    assert ordered > drops[0] > drops[1] > drops[2]


def test_zero_shot_splits_partition_the_600_classes(full_gt: GroundTruth, splits_path) -> None:
    splits = load_splits(splits_path)
    raw = json.loads(splits_path.read_text())["splits"]
    expected_unseen = {"rf_uc": 120, "nf_uc": 120, "uo": 100, "uv": 84}
    assert set(splits) == set(expected_unseen)
    for name, split in splits.items():
        unseen, seen = set(split.unseen), set(split.seen(600))
        assert len(unseen) == expected_unseen[name]
        assert unseen.isdisjoint(seen) and unseen | seen == set(range(600))
        assert seen == set(raw[name]["seen"])


@pytest.mark.parametrize("name", ["rf_uc", "uv"])
def test_zero_shot_values_on_full_set(full_gt: GroundTruth, splits_path, name: str) -> None:
    split = load_splits(splits_path)[name]
    perfect = predictions_from_groundtruth(full_gt)
    seen_only = perfect.select(~np.isin(perfect.hoi, split.unseen))  # a model blind to unseen classes
    res = evaluate(full_gt, seen_only, EvalConfig(zero_shot=split))
    z = res.zero_shot
    n_unseen = len(split.unseen)
    assert z is not None and z.unseen == 0.0 and z.seen == 100.0
    assert z.full == pytest.approx(100.0 * (600 - n_unseen) / 600, abs=1e-9)
    assert z.full == res.map_full
