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
