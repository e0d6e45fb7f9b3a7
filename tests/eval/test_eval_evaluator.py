"""evaluate(): means, Known-Object, top-k, zero-shot, and behaviour on the full HICO-DET test set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_test_helpers import H1, H2, O1, O2, make_gt, make_preds

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.vocabulary import load_vocabulary
from hoi_edge.eval import (
    EvalConfig,
    GroundTruth,
    Predictions,
    ZeroShotSplit,
    evaluate,
    is_hico_label_space,
    load_groundtruth,
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
    assert res.rare_source == "config"
    no_lists = evaluate(gt, preds)
    assert math.isnan(no_lists.map_rare) and math.isnan(no_lists.map_non_rare)
    assert no_lists.rare_source is None and no_lists.to_dict()["rare_source"] is None
    assert "Rare / Non-rare: n/a" in no_lists.to_markdown()


def _hico_gt(pairs: list[tuple[int, int]], class_object: np.ndarray | None = None) -> GroundTruth:
    """A 600-class GT without rare lists; pairs: (image, hoi), all with boxes H1 / O1."""
    vocab = load_vocabulary("hico")
    return GroundTruth.from_arrays(
        filenames=["a.jpg", "b.jpg"], num_classes=600,
        image=[i for i, _ in pairs], hoi=[c for _, c in pairs],
        boxes_h=[H1] * len(pairs), boxes_o=[O1] * len(pairs),
        class_object=vocab.hoi_object if class_object is None else class_object,
    )


def test_rare_lists_fall_back_to_the_hico_vocabulary() -> None:
    vocab = load_vocabulary("hico")
    assert len(vocab.rare) == 138 and 8 in vocab.rare and 245 not in vocab.rare
    gt = _hico_gt([(0, 8), (1, 245)])
    preds = make_preds([(0, 8, 0.9, H1, O1)])  # rare class 8 found, non-rare class 245 missed
    res = evaluate(gt, preds)
    assert res.rare_source == "hico-vocabulary"
    assert (res.map_rare, res.map_non_rare, res.map_full) == (100.0, 0.0, 50.0)
    assert res.to_dict()["rare_source"] == "hico-vocabulary"
    assert "built-in HICO-DET vocabulary" in res.to_markdown()
    # Switched off, or overridden by the configuration.
    off = evaluate(gt, preds, EvalConfig(rare_from_vocabulary=False))
    assert off.rare_source is None and math.isnan(off.map_rare)
    cfg = evaluate(gt, preds, EvalConfig(rare=(245,)))
    assert cfg.rare_source == "config" and (cfg.map_rare, cfg.map_non_rare) == (0.0, 100.0)


def test_rare_fallback_needs_the_hico_label_space() -> None:
    vocab = load_vocabulary("hico")
    preds = make_preds([(0, 8, 0.9, H1, O1)])
    # Class 8 mapped to another object than HICO-DET's: not the HICO label space.
    other = vocab.hoi_object.copy()
    other[8] = (other[8] + 1) % 80
    gt = _hico_gt([(0, 8), (1, 245)], class_object=other)
    assert not is_hico_label_space(gt)
    res = evaluate(gt, preds)
    assert res.rare_source is None and math.isnan(res.map_rare) and res.map_full == 50.0
    # Objects unknown for every class (-1): only the class count can be checked, and it fits.
    unknown = _hico_gt([(0, 8), (1, 245)], class_object=np.full(600, -1))
    assert is_hico_label_space(unknown)
    # Not 600 classes.
    small = make_gt([(0, 0, H1, O1)], num_classes=3)
    assert not is_hico_label_space(small) and evaluate(small, make_preds([])).rare_source is None


def test_rare_fallback_on_real_two_image_annotations(real2_gt_path) -> None:
    gt = load_groundtruth(real2_gt_path)  # no rare / non_rare lists, no correspondence
    assert gt.rare is None and gt.non_rare is None and is_hico_label_space(gt)
    res = evaluate(gt, predictions_from_groundtruth(gt))
    assert res.rare_source == "hico-vocabulary"
    # Its two classes (245 sit_on bench, 89 sit_on chair) are both non-rare; no rare class has GT.
    assert res.map_non_rare == 100.0 and math.isnan(res.map_rare)
    # Missing image 2's pair (class 89) halves the non-rare mean.
    res = evaluate(gt, predictions_from_groundtruth(gt).select(gt.hoi != 89))
    assert res.map_non_rare == 50.0 and res.map_full == 50.0


def test_full_set_uses_the_gt_rare_lists(full_gt: GroundTruth) -> None:
    assert is_hico_label_space(full_gt)
    assert sorted(full_gt.rare) == sorted(load_vocabulary("hico").rare)
    assert evaluate(full_gt, make_preds([])).rare_source == "gt"


def test_box_offset_is_added_to_predicted_boxes() -> None:
    # Tiny boxes: a 1 px shift drops the IoU to 1/7 (inclusive pixels), so it decides the match.
    h, o = [0, 0, 1, 1], [2, 0, 3, 1]
    gt = make_gt([(0, 0, h, o)])
    zero_based = make_preds([(0, 0, 0.9, [-1, -1, 0, 0], [1, -1, 2, 0])])
    assert evaluate(gt, zero_based).per_class_ap[0] == 0.0
    res = evaluate(gt, zero_based, EvalConfig(box_offset=1))
    assert res.per_class_ap[0] == 100.0 and res.box_offset == 1.0
    assert res.to_dict()["box_offset"] == 1.0 and "shifted by +1" in res.to_markdown()
    assert zero_based.boxes_h.tolist() == [[-1, -1, 0, 0]]  # the input is not modified
    assert zero_based.shift_boxes(0) is zero_based
    with pytest.raises(ValueError, match="box_offset"):
        EvalConfig(box_offset=math.nan)


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
    assert res.rare_source == "gt"
    ko = evaluate(full_gt, predictions_from_groundtruth(full_gt), EvalConfig(setting="known_object"))
    assert ko.map_full == 100.0 and ko.num_detections == full_gt.num_pairs


def test_full_set_known_object_drops_fps_on_images_without_the_object(full_gt: GroundTruth) -> None:
    gt = full_gt
    rng = np.random.default_rng(5)
    present = np.zeros((gt.num_images, int(gt.object.max()) + 1), dtype=bool)
    present[gt.image, gt.object] = True
    # Per class c, top-scored FPs (score 2 > the perfect detections' 1): one on an image
    # without any GT pair of c's object (KO drops it) and, for about half the classes, one on
    # an image that shows the object but has no pair of class c (KO keeps it).
    img, hoi, kept_by_ko = [], [], np.zeros(gt.num_classes, dtype=bool)
    for c in range(gt.num_classes):
        o = gt.class_object[c]
        img.append(rng.choice(np.flatnonzero(~present[:, o])))
        hoi.append(c)
        has_c = np.zeros(gt.num_images, dtype=bool)
        has_c[gt.image[gt.hoi == c]] = True
        shown = np.flatnonzero(present[:, o] & ~has_c)
        if shown.size and rng.random() < 0.5:
            img.append(rng.choice(shown))
            hoi.append(c)
            kept_by_ko[c] = True
    assert 0 < kept_by_ko.sum() < gt.num_classes
    perfect = predictions_from_groundtruth(gt)
    n_fp = len(img)
    preds = Predictions.from_arrays(
        np.r_[perfect.image, img], np.r_[perfect.hoi, hoi], np.r_[perfect.score, np.full(n_fp, 2.0)],
        np.r_[perfect.boxes_h, np.tile(H1, (n_fp, 1))], np.r_[perfect.boxes_o, np.tile(O1, (n_fp, 1))])
    # k FPs ranked above n TPs: precision grows with rank, every recall threshold is reached
    # only by ranks ending at the last, so AP = n / (n + k).
    n = gt.n_gt_per_class.astype(np.float64)
    default = evaluate(gt, preds)
    k_default = 1 + kept_by_ko
    np.testing.assert_allclose(default.per_class_ap, 100 * n / (n + k_default), rtol=1e-12)
    assert default.num_detections == gt.num_pairs + n_fp
    ko = evaluate(gt, preds, EvalConfig(setting="known_object"))
    np.testing.assert_allclose(ko.per_class_ap, 100 * n / (n + kept_by_ko), rtol=1e-12)
    assert ko.num_detections == gt.num_pairs + int(kept_by_ko.sum())
    assert ko.map_full < 100.0 and default.map_full < ko.map_full


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
    unseen_mask = np.isin(np.arange(600), split.unseen)
    assert np.all(res.per_class_ap[unseen_mask] == 0.0) and np.all(res.per_class_ap[~unseen_mask] == 100.0)

    # Noisy predictions: varied per-class APs; the split means must match plain NumPy means
    # over the split's index lists, and Full the class-count-weighted mean of the two.
    noisy = evaluate(full_gt, _jittered(full_gt, 0.15, seed=2), EvalConfig(zero_shot=split))
    ap, zn = noisy.per_class_ap, noisy.zero_shot
    assert zn is not None and not np.isnan(ap).any() and np.ptp(ap) > 20
    assert zn.unseen == pytest.approx(ap[np.asarray(split.unseen)].mean(), abs=1e-9)
    assert zn.seen == pytest.approx(ap[np.setdiff1d(np.arange(600), split.unseen)].mean(), abs=1e-9)
    assert zn.full == pytest.approx((n_unseen * zn.unseen + (600 - n_unseen) * zn.seen) / 600, abs=1e-9)
    assert zn.full == pytest.approx(math.fsum(ap.tolist()) / 600, abs=1e-9)
