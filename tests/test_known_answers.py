"""End-to-end predict() with known answers: a planted detector, CLIP and HOI head (hoi_edge.testing.PlantedRunner)
whose outputs are chosen, driven through the real HOIDetector pipeline on non-square images.

Every expectation below is worked out by hand from the planted outputs (box literals in image pixels,
the scoring formula written out here), never with the pipeline's own functions, so a bug in the shared
post-processing (box mapping, which instance is the human, object prior, ranking) shows up as a failure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hoi_edge import HOIDetector
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.postprocess import ScoringParams
from hoi_edge.pipeline.spec import PipelineSpec
from hoi_edge.testing import PlantedRunner

DETECTOR_CLASSES = ("person", "cup", "horse", "bicycle", "dog")     # + DETR's trailing no-object logit
VOCAB = Vocabulary.from_dict({
    "name": "planted", "verbs": ["hold", "drink_with", "ride", "feed"], "objects": ["cup", "horse", "bicycle"],
    "hois": [["hold", "cup"], ["drink_with", "cup"], ["ride", "horse"], ["feed", "horse"], ["ride", "bicycle"],
             ["hold", "bicycle"]]})
HOLD_CUP, DRINK_CUP, RIDE_HORSE, FEED_HORSE, RIDE_BICYCLE, HOLD_BICYCLE = range(6)
EMBED = 8
TEXT = np.eye(VOCAB.num_classes, EMBED, dtype=np.float32)      # class c's text embedding is e_c
SCORING = ScoringParams(pair_scale=2.0, pair_bias=-1.0, global_scale=1.0, global_bias=-2.0, global_weight=0.25,
                        detector_score_power=2.8)
DETECTOR_SIZE = 64
BOX_THRESHOLD = 0.4

# queries of the planted detector: (detector class, probability)
PERSON, CUP, HORSE, CUP_DUPLICATE, DOG, FAINT_PERSON, BICYCLE, BACKGROUND = range(8)
QUERY_CLASSES = {PERSON: ("person", 0.9), CUP: ("cup", 0.8), HORSE: ("horse", 0.6), CUP_DUPLICATE: ("cup", 0.5),
                 DOG: ("dog", 0.95), FAINT_PERSON: ("person", 0.3), BICYCLE: ("bicycle", 0.7),
                 BACKGROUND: (None, 0.0)}

# Planted boxes (cx, cy, w, h as fractions of the square detector input) and the boxes they must come
# back as, in original image pixels (x1, y1, x2, y2), worked out by hand: a letterboxed image fills the
# input along its longer side L, so input fraction f is f * L image pixels on both axes.
CASES = {
    "landscape 500x300": dict(
        size_wh=(500, 300),          # L = 500
        boxes={PERSON: (0.2, 0.3, 0.2, 0.4), CUP: (0.46, 0.26, 0.12, 0.12), HORSE: (0.78, 0.33, 0.36, 0.5),
               CUP_DUPLICATE: (0.47, 0.26, 0.12, 0.12), DOG: (0.1, 0.1, 0.2, 0.2), FAINT_PERSON: (0.9, 0.1, 0.2, 0.2),
               BICYCLE: (0.3, 0.6, 0.2, 0.2), BACKGROUND: (0.5, 0.5, 0.2, 0.2)},
        pixels={PERSON: (50, 50, 150, 250), CUP: (200, 100, 260, 160), HORSE: (300, 40, 480, 290),
                BICYCLE: (100, 250, 200, 300)},   # the bicycle reaches into the padding below the image: clipped
    ),
    "portrait 240x400": dict(
        size_wh=(240, 400),          # L = 400
        boxes={PERSON: (0.175, 0.5, 0.25, 0.8), CUP: (0.4, 0.55, 0.1, 0.1), HORSE: (0.4125, 0.5, 0.325, 0.5),
               CUP_DUPLICATE: (0.405, 0.55, 0.1, 0.1), DOG: (0.1, 0.1, 0.2, 0.2), FAINT_PERSON: (0.3, 0.1, 0.2, 0.2),
               BICYCLE: (0.6, 0.85, 0.2, 0.2), BACKGROUND: (0.5, 0.5, 0.2, 0.2)},
        pixels={PERSON: (20, 40, 120, 360), CUP: (140, 200, 180, 240), HORSE: (100, 100, 230, 300),
                BICYCLE: (200, 300, 240, 380)},   # reaches into the padding right of the image: clipped
    ),
}

# pair embeddings of the planted head, by (subject query, object query): entry c is the pair's logit input for class c
PAIRS = {
    (PERSON, CUP): {HOLD_CUP: 1.5, DRINK_CUP: 0.5, RIDE_HORSE: 4.0},      # ride-horse on a cup: the prior removes it
    (PERSON, BICYCLE): {RIDE_BICYCLE: 2.5, HOLD_BICYCLE: -1.0, HOLD_CUP: 3.0},
    (PERSON, HORSE): {RIDE_HORSE: 1.0, FEED_HORSE: 0.0},
    (CUP, PERSON): {HOLD_CUP: 5.0},                                       # a cup cannot be the subject
}
GLOBAL = {RIDE_HORSE: 3.0, HOLD_CUP: 0.5}                                # the image-level CLIP term
OBJECT_OF = {CUP: "cup", HORSE: "horse", BICYCLE: "bicycle"}
CLASSES_OF = {CUP: (HOLD_CUP, DRINK_CUP), HORSE: (RIDE_HORSE, FEED_HORSE), BICYCLE: (RIDE_BICYCLE, HOLD_BICYCLE)}


def _logits() -> np.ndarray:
    """Per query: log p for its class and log(1 - p) for no-object, the rest -1e4, so softmax gives p exactly."""
    out = np.full((len(QUERY_CLASSES), len(DETECTOR_CLASSES) + 1), -1e4, np.float32)
    for q, (name, p) in QUERY_CLASSES.items():
        if name is None:
            out[q, -1] = 0.0
        else:
            out[q, DETECTOR_CLASSES.index(name)] = math.log(p)
            out[q, -1] = math.log(1.0 - p)
    return out


def _vector(entries: dict[int, float]) -> np.ndarray:
    v = np.zeros(EMBED, np.float32)
    for c, value in entries.items():
        v[c] = value
    return v


def _detector(case: dict, max_detections: int = 100) -> tuple[HOIDetector, PlantedRunner]:
    boxes = np.array([case["boxes"][q] for q in range(len(QUERY_CLASSES))], np.float32)
    runner = PlantedRunner(_logits(), boxes, _vector(GLOBAL), {k: _vector(v) for k, v in PAIRS.items()})
    spec = PipelineSpec(detector_size=DETECTOR_SIZE, clip_size=32, clip_mean=(0.5, 0.5, 0.5),
                        clip_std=(0.25, 0.25, 0.25), detector_classes=DETECTOR_CLASSES, max_instances=6,
                        box_score_threshold=BOX_THRESHOLD, nms_threshold=0.5, max_detections=max_detections,
                        scoring=SCORING)
    return HOIDetector(runner, spec, VOCAB, TEXT), runner


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _expected(case: dict) -> list[tuple[str, tuple, tuple, float]]:
    """(class name, human box, object box, score) of every triplet, best first, by the README's formula:
    ((1-w) sigmoid(a*pair + b) + w sigmoid(a_g*global + b_g)) * (s_human * s_object)^lambda, for the classes
    of the detected object only. The person is the only human; the cup duplicate is suppressed by NMS, the
    dog is not in the vocabulary and the faint person is below the box threshold."""
    s, w = SCORING, SCORING.global_weight
    out = []
    for obj in (CUP, HORSE, BICYCLE):
        pair = PAIRS[(PERSON, obj)]
        det = (QUERY_CLASSES[PERSON][1] * QUERY_CLASSES[obj][1]) ** s.detector_score_power
        for c in CLASSES_OF[obj]:
            local = _sigmoid(s.pair_scale * pair.get(c, 0.0) + s.pair_bias)
            image = _sigmoid(s.global_scale * GLOBAL.get(c, 0.0) + s.global_bias)
            out.append((VOCAB.hoi_name(c), case["pixels"][PERSON], case["pixels"][obj],
                        ((1 - w) * local + w * image) * det))
    out.sort(key=lambda t: -t[3])
    scores = [t[3] for t in out]
    assert len(set(scores)) == len(scores)          # no ties: the order is fully determined
    return out


def _image(case: dict, rgb=(200, 30, 90)) -> np.ndarray:
    w, h = case["size_wh"]
    return np.full((h, w, 3), rgb, np.uint8)


@pytest.mark.parametrize("name", list(CASES))
def test_every_triplet_boxes_scores_and_order(name):
    case = CASES[name]
    detector, _ = _detector(case)
    dets = detector.predict(_image(case))
    want = _expected(case)
    assert [d.hoi_name for d in dets] == [t[0] for t in want]       # exactly these classes, best first
    for d, (_, human, obj, score) in zip(dets, want):
        np.testing.assert_allclose(d.human_box, human, atol=1e-3, err_msg=f"human box of {d.hoi_name}")
        np.testing.assert_allclose(d.object_box, obj, atol=1e-3, err_msg=f"object box of {d.hoi_name}")
        assert d.score == pytest.approx(score, rel=1e-5), d.hoi_name
        assert d.human_score == pytest.approx(QUERY_CLASSES[PERSON][1], rel=1e-5)
        assert d.object_label == d.hoi_name.split()[-1]


def test_top_n_keeps_the_best_in_order():
    case = CASES["landscape 500x300"]
    detector, _ = _detector(case, max_detections=3)
    dets = detector.predict(_image(case))
    assert [d.hoi_name for d in dets] == ["hold cup", "ride bicycle", "drink_with cup"]   # see _expected
    assert [d.hoi_name for d in dets] == [t[0] for t in _expected(case)[:3]]


@pytest.mark.parametrize("name", list(CASES))
def test_the_human_is_the_person_box(name):
    case = CASES[name]
    detector, _ = _detector(case)
    dets = detector.predict(_image(case))
    assert dets
    for d in dets:
        np.testing.assert_allclose(d.human_box, case["pixels"][PERSON], atol=1e-3)
        assert d.human_score == pytest.approx(QUERY_CLASSES[PERSON][1], rel=1e-5)
        obj = next(q for q in OBJECT_OF if np.allclose(d.object_box, case["pixels"][q], atol=1e-3))
        assert d.object_score == pytest.approx(QUERY_CLASSES[obj][1], rel=1e-5)


def test_object_prior_removes_classes_of_other_objects():
    case = CASES["landscape 500x300"]
    detector, _ = _detector(case)
    dets = detector.predict(_image(case))
    by_object = {}
    for d in dets:
        obj = next(q for q, box in case["pixels"].items() if np.allclose(d.object_box, box, atol=1e-3))
        by_object.setdefault(OBJECT_OF[obj], set()).add(d.hoi_name)
    # the cup pair's strongest planted logit is 'ride horse' (and the image-level term favours it too),
    # the bicycle pair's second strongest is 'hold cup': neither may be reported for them
    assert by_object == {"cup": {"hold cup", "drink_with cup"}, "horse": {"ride horse", "feed horse"},
                         "bicycle": {"ride bicycle", "hold bicycle"}}


def test_what_the_networks_were_fed():
    """The detector gets the image letterboxed into the top-left of its square input in RGB order, padding at the
    mean colour; the head gets the kept instances' boxes divided by the longer image side, the person flagged."""
    case = CASES["landscape 500x300"]
    detector, runner = _detector(case)
    rgb = (200, 30, 90)
    detector.predict(_image(case, rgb))
    (x,) = runner.received["detector"][0]
    assert x.shape == (1, 3, DETECTOR_SIZE, DETECTOR_SIZE)
    content = 38                     # 300 * 64 / 500 = 38.4 rows of image, the rest is padding
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    colour = (np.array(rgb) / 255.0 - mean) / std
    np.testing.assert_allclose(x[0, :, :content, :], np.broadcast_to(colour[:, None, None], (3, content, 64)),
                               atol=1e-4)
    assert np.all(x[0, :, content:, :] == 0)
    features, boxes, valid, human, _ = runner.received["hoi_head"][0]
    kept = [int(q) for q in features[0, valid[0] > 0].argmax(-1)]
    assert sorted(kept) == [PERSON, CUP, HORSE, BICYCLE]      # the duplicate, the dog and the faint person are gone
    np.testing.assert_allclose(boxes[0, valid[0] > 0], np.array([case["pixels"][q] for q in kept]) / 500.0,
                               atol=1e-5)
    assert human[0, valid[0] > 0].tolist() == [float(q == PERSON) for q in kept]
