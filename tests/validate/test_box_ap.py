"""Box AP against a reference as pseudo ground truth: hand-computed values, n/a groups, and a failing case."""

import numpy as np
import pytest

from hoi_edge.validate.box_ap import ImageBoxes, box_ap, interpolated_ap

PERSON, CUP, TIE = 0, 41, 27


def boxes(rows, classes, scores=None) -> ImageBoxes:
    rows = np.asarray(rows, np.float64).reshape(-1, 4)
    scores = np.ones(len(rows)) if scores is None else np.asarray(scores, np.float64)
    return ImageBoxes(rows, np.asarray(classes, np.int64), scores)


REFERENCE = [
    boxes([[10, 10, 110, 210], [200, 20, 300, 220], [50, 150, 90, 190]], [PERSON, PERSON, CUP]),
    boxes([[0, 0, 50, 50]], [TIE]),
]


def test_identical_instances_score_100_in_every_group():
    ap = box_ap(REFERENCE, REFERENCE, PERSON)
    for group in (ap.persons, ap.objects, ap.overall):
        assert group.ap50 == pytest.approx(100.0) and group.ap == pytest.approx(100.0)
    assert (ap.persons.reference_instances, ap.objects.reference_instances) == (2, 2)


def test_hand_computed_ap_with_a_miss_and_a_false_positive():
    # persons: ranked [TP (0.9), FP (0.8)], 2 reference persons -> precision 1 up to recall 0.5, then nothing:
    # COCO's 101 recall points 0.00..0.50 (51 of them) get precision 1 -> AP = 51/101
    cand = [boxes([[10, 10, 110, 210], [400, 400, 500, 500], [50, 150, 90, 190]], [PERSON, PERSON, CUP],
                  [0.9, 0.8, 0.7]), boxes([[0, 0, 50, 50]], [TIE], [0.6])]
    ap = box_ap(cand, REFERENCE, PERSON)
    assert ap.persons.ap50 == pytest.approx(100 * 51 / 101) and ap.persons.ap == pytest.approx(100 * 51 / 101)
    assert ap.objects.ap50 == pytest.approx(100.0)
    assert ap.overall.ap50 == pytest.approx(100 * (51 / 101 + 1 + 1) / 3)     # mean over person, cup, tie
    # a false positive ranked first: precision 0.5 at recall 0.5 and 2/3 at recall 1 -> envelope 2/3 everywhere
    assert interpolated_ap([False, True, True], 2) == pytest.approx(2 / 3)


def test_shifted_boxes_fail():
    shifted = [ImageBoxes(r.boxes + np.array([60, 0, 60, 0]), r.classes, r.scores) for r in REFERENCE]
    ap = box_ap(shifted, REFERENCE, PERSON)
    assert ap.persons.ap50 < 1.0 and ap.overall.ap50 < 1.0
    # persons 100 px wide moved 12 px: IoU 88/112 = 0.79 passes 0.50..0.75 (6 of 10 thresholds) -> AP 60
    slightly = [ImageBoxes(r.boxes + np.array([12, 0, 12, 0]), r.classes, r.scores) for r in REFERENCE]
    ap = box_ap(slightly, REFERENCE, PERSON)
    assert ap.persons.ap50 == pytest.approx(100.0) and ap.persons.ap == pytest.approx(60.0)


def test_group_without_reference_instances_is_na_not_a_vacuous_pass():
    only_persons = [boxes([[10, 10, 110, 210]], [PERSON])]
    cand = [boxes([[10, 10, 110, 210], [0, 0, 30, 30]], [PERSON, CUP], [0.9, 0.8])]
    ap = box_ap(cand, only_persons, PERSON)
    assert ap.objects.ap50 is None and ap.objects.ap is None and ap.objects.candidate_instances == 1
    assert ap.persons.ap50 == pytest.approx(100.0)
    empty = box_ap([boxes([], [])], [boxes([], [])], PERSON)
    assert empty.overall.ap50 is None and empty.persons.ap is None


def test_misaligned_image_lists_are_refused():
    with pytest.raises(ValueError, match="must align"):
        box_ap(REFERENCE[:1], REFERENCE, PERSON)


def test_a_reference_box_is_claimed_once():
    """Two reference persons A and B; the candidate finds A (0.9), a near-copy of A (0.8) and B (0.7). The copy
    is a false positive (A is taken), so the ranked list is TP, FP, TP: precision 1 up to recall 0.5 (51 of
    COCO's 101 recall points), then 2/3 (50 points): AP50 = (51 + 50 * 2/3) / 101 = 83.5 %, not 100."""
    a, b = [10, 10, 110, 210], [200, 20, 300, 220]
    near_a = [12, 10, 112, 210]                                       # IoU with A 0.96, with B 0
    ap = box_ap([boxes([a, near_a, b], [PERSON] * 3, [0.9, 0.8, 0.7])], [boxes([a, b], [PERSON] * 2)], PERSON)
    assert ap.persons.ap50 == pytest.approx(83.5, abs=0.005)
    assert ap.persons.candidate_instances == 3 and ap.persons.reference_instances == 2


# ------------------------------------------------------------------ before the cut (what INT8 costs)

def test_low_threshold_measure_on_planted_boxes():
    """The reference keeps what passes the pipeline's 0.2; the candidate is ranked down to 0.01. A person the
    candidate scores 0.19 is found (ranked low), not lost as under a cut at 0.2."""
    from hoi_edge.validate.box_ap import detector_comparison

    reference = [boxes([[0, 0, 100, 200], [200, 0, 300, 200], [50, 50, 80, 80], [600, 0, 700, 100]],
                       [PERSON, PERSON, CUP, PERSON], [0.9, 0.25, 0.6, 0.1])]      # the 0.1 one is not kept
    candidate = [boxes([[0, 0, 100, 200], [200, 0, 300, 200], [50, 50, 80, 80], [400, 0, 500, 200]],
                       [PERSON, PERSON, CUP, PERSON], [0.85, 0.19, 0.55, 0.5])]
    got = detector_comparison(candidate, reference, PERSON, threshold=0.2)
    # persons ranked TP (0.85), FP (0.5), TP (0.19) against 2 kept: precision 1 up to recall 0.5 (51 of the 101
    # recall points), then 2/3 -> (51 + 50 * 2/3) / 101
    assert got.box_ap.persons.ap50 == pytest.approx(100 * (51 + 50 * 2 / 3) / 101)
    assert got.box_ap.objects.ap50 == pytest.approx(100.0)
    assert got.box_ap.overall.ap50 == pytest.approx(100 * ((51 + 50 * 2 / 3) / 101 + 1) / 2)
    assert got.box_ap.overall.reference_instances == 3
    # at the pipeline's threshold the candidate keeps the first person and the cup: 2 of the 3 kept
    assert got.recall == pytest.approx(100 * 2 / 3)
    # the same candidate cut at 0.2 first (the old measure) loses the second person entirely
    cut = detector_comparison([c.above(0.2) for c in candidate], reference, PERSON, threshold=0.2)
    assert cut.box_ap.persons.ap50 == pytest.approx(100 * 51 / 101)


def test_recall_counts_each_reference_instance_once_and_needs_the_class():
    from hoi_edge.validate.box_ap import recall_at

    reference = [boxes([[0, 0, 100, 100]], [PERSON])]
    twice = [boxes([[0, 0, 100, 100], [2, 2, 100, 100]], [PERSON, PERSON], [0.9, 0.8])]
    assert recall_at(twice, reference, 0.2) == pytest.approx(100.0)
    assert recall_at([boxes([[0, 0, 100, 100]], [CUP], [0.9])], reference, 0.2) == 0.0
    assert recall_at([boxes([[0, 0, 100, 100]], [PERSON], [0.1])], reference, 0.2) == 0.0
    assert recall_at([boxes([], [])], [boxes([], [])], 0.2) is None


def test_detector_instances_keep_low_scores_with_nms():
    """Raw detector outputs -> instances down to 0.01: NMS still removes the duplicate, 0.005 is dropped."""
    from types import SimpleNamespace

    from hoi_edge.core.conventions import PROBABILITIES, STRETCH
    from hoi_edge.pipeline.postprocess import LabelMap
    from hoi_edge.validate.box_ap import detector_instances

    spec = SimpleNamespace(detector_size=100, nms_candidates=100, nms_threshold=0.5,
                           detector_score_kind=PROBABILITIES, detector_resize=STRETCH)
    labels = LabelMap(to_object=np.array([-1, 0]), person_class=0)        # class 0 person, class 1 an object
    scores = np.array([[[0.9, 0.0], [0.05, 0.0], [0.05, 0.0], [0.0, 0.005]]], np.float32)
    cxcywh = np.array([[[0.3, 0.3, 0.2, 0.2], [0.31, 0.3, 0.2, 0.2], [0.8, 0.8, 0.2, 0.2], [0.5, 0.5, 0.1, 0.1]]],
                      np.float32)
    got = detector_instances(spec, labels, (scores, cxcywh, np.zeros((1, 4, 2), np.float32)), (100, 100))
    np.testing.assert_allclose(got.scores, [0.9, 0.05], rtol=1e-6)
    np.testing.assert_allclose(got.boxes, [[20, 20, 40, 40], [70, 70, 90, 90]], atol=1e-4)
    assert got.classes.tolist() == [0, 0]
    above = detector_instances(spec, labels, (scores, cxcywh, np.zeros((1, 4, 2), np.float32)), (100, 100), 0.2)
    assert above.scores.tolist() == pytest.approx([0.9])


def test_validate_column_is_for_artifacts_with_a_real_detector(monkeypatch):
    """``validate``'s Box AP / Recall: the artifact's instances before the cut against the reference's kept ones;
    n/a (None) for an artifact whose detector had random weights, or without detector outputs."""
    from pathlib import Path
    from types import SimpleNamespace

    import hoi_edge.validate.validator as validator
    from hoi_edge.validate.measure import KeptInstances

    ref_boxes = [boxes([[0, 0, 100, 200], [50, 50, 80, 80]], [PERSON, CUP], [0.9, 0.15])]
    cand_boxes = [boxes([[0, 0, 100, 200]], [PERSON], [0.12])]

    def run(per_image, candidates=True):
        kept = KeptInstances.collect_boxes(list(enumerate(per_image)), PERSON)
        return SimpleNamespace(candidates=kept if candidates else None, box_threshold=0.2,
                               spec=SimpleNamespace(path=Path("artifact")))

    monkeypatch.setattr(validator, "_real_detector", lambda r: True)
    got = validator.instance_box_ap(run(ref_boxes), run(cand_boxes), 1)
    # the reference keeps the person only (the cup is below 0.2); the artifact ranks it at 0.12: found, not kept
    assert got["box_ap"]["persons"]["ap50"] == pytest.approx(100.0) and got["box_ap"]["objects"]["ap50"] is None
    assert got["recall"] == 0.0 and got["threshold"] == 0.2
    assert validator.instance_box_ap(run(ref_boxes), run(cand_boxes, candidates=False), 1) is None
    monkeypatch.setattr(validator, "_real_detector", lambda r: False)
    assert validator.instance_box_ap(run(ref_boxes), run(cand_boxes), 1) is None
