"""Target assignment, GT-instance injection and the losses on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hoi_edge.data.hico_json import HicoImage
from hoi_edge.data.vocabulary import load_vocabulary
from hoi_edge.model.detectors import detector_class_names
from hoi_edge.pipeline.postprocess import Instances, LabelMap
from train.losses import HOILoss, binary_focal_loss_with_logits
from train.targets import add_gt_instances, image_targets, pair_class_mask, pair_targets, query_boxes_xyxy

VOCAB = load_vocabulary("hico")
LABELS = LabelMap.build(detector_class_names(91), VOCAB)
PERSON, CUP, BICYCLE = (VOCAB.objects.index(n) for n in ("person", "cup", "bicycle"))


def cls(verb: str, obj: str) -> int:
    return VOCAB.hois.index((VOCAB.verbs.index(verb), VOCAB.objects.index(obj)))


def instances(boxes, objects, scores=None, k: int = 4) -> Instances:
    """K slots; objects[i] is a vocabulary object (PERSON marks a human)."""
    n = len(boxes)
    inst = Instances(boxes=np.zeros((k, 4), np.float32), scores=np.zeros(k, np.float32),
                     classes=np.zeros(k, np.int64), objects=np.full(k, -1, np.int64), human=np.zeros(k, bool),
                     valid=np.zeros(k, bool), features=np.zeros((k, 3), np.float32))
    inst.boxes[:n] = boxes
    inst.scores[:n] = scores if scores is not None else np.linspace(0.9, 0.5, n)
    inst.objects[:n] = objects
    inst.human[:n] = np.asarray(objects) == PERSON
    inst.classes[:n] = [int(np.flatnonzero(LABELS.to_object == o)[0]) for o in objects]
    inst.valid[:n] = True
    inst.features[:n] = np.arange(n)[:, None] + 1
    return inst


def annotation(boxes_h, boxes_o, hois) -> HicoImage:
    hoi = np.asarray(hois, np.int64)
    return HicoImage("x.jpg", (100, 100), np.asarray(boxes_h, np.float32).reshape(-1, 4),
                           np.asarray(boxes_o, np.float32).reshape(-1, 4), hoi, VOCAB.hoi_object[hoi],
                           np.full(hoi.shape, -1))


HUMAN, CUP_BOX, BIKE_BOX = [10, 10, 50, 90], [45, 40, 60, 55], [60, 50, 95, 95]


def test_pair_targets_use_iou_half_on_both_boxes():
    inst = instances([HUMAN, CUP_BOX, BIKE_BOX], [PERSON, CUP, BICYCLE])
    hold_cup, drink, ride = cls("hold", "cup"), cls("drink_with", "cup"), cls("ride", "bicycle")
    ann = annotation([[12, 12, 50, 88], [12, 12, 50, 88], [30, 0, 70, 60]],  # human IoU 0.9, 0.9, < 0.5
                     [[45, 41, 60, 56], [45, 41, 60, 56], BIKE_BOX], [hold_cup, drink, ride])
    t = pair_targets(inst, ann, VOCAB.num_classes)
    assert t.shape == (16, 600)
    assert set(zip(*np.nonzero(t))) == {(0 * 4 + 1, hold_cup), (0 * 4 + 1, drink)}  # ride: human box misses
    mask = pair_class_mask(inst, VOCAB.hoi_object)
    feasible_rows = {r for r in range(16) if mask[r].any()}
    assert feasible_rows == {1, 2}                                     # (human 0, cup 1), (human 0, bicycle 2)
    assert mask[1, hold_cup] and not mask[1, ride] and mask[2, ride] and not mask[2, hold_cup]
    seen = np.ones(600, bool)
    seen[drink] = False
    assert not pair_class_mask(inst, VOCAB.hoi_object, seen)[1, drink]
    assert np.flatnonzero(image_targets(ann, 600)).tolist() == sorted([hold_cup, drink, ride])


def test_gt_instances_fill_what_the_detector_missed():
    inst = instances([HUMAN, BIKE_BOX], [PERSON, BICYCLE])
    queries = np.array([[0, 0, 5, 5], [44, 39, 61, 54], [60, 50, 95, 95]], np.float32)
    feats = np.array([[7, 7, 7], [8, 8, 8], [9, 9, 9]], np.float32)
    ann = annotation([[11, 10, 50, 90], [11, 10, 50, 90]], [CUP_BOX, [61, 50, 95, 95]],
                     [cls("hold", "cup"), cls("ride", "bicycle")])
    out = add_gt_instances(inst, ann, queries, feats, LABELS)
    assert out.valid.tolist() == [True, True, True, False]             # only the cup was missing
    np.testing.assert_array_equal(out.boxes[2], CUP_BOX)
    assert out.objects[2] == CUP and not out.human[2] and out.scores[2] == 1.0
    np.testing.assert_array_equal(out.features[2], feats[1])           # feature of the best-overlapping query
    assert inst.valid.tolist() == [True, True, False, False]           # input untouched
    assert pair_targets(out, ann, 600)[0 * 4 + 2, cls("hold", "cup")] == 1


def test_gt_instances_replace_the_weakest_useless_detection_when_full():
    far = [[0, 0, 4, 4], [90, 0, 99, 4]]
    inst = instances([HUMAN, far[0], BIKE_BOX, far[1]], [PERSON, CUP, BICYCLE, CUP], scores=[0.9, 0.3, 0.8, 0.6])
    ann = annotation([HUMAN], [CUP_BOX], [cls("hold", "cup")])
    out = add_gt_instances(inst, ann, np.array([[0, 0, 1, 1]], np.float32), np.ones((1, 3), np.float32), LABELS)
    np.testing.assert_array_equal(out.boxes[1], CUP_BOX)                # slot 1 had the lowest score
    np.testing.assert_array_equal(out.boxes[3], far[1])


def test_query_boxes_match_select_instances_convention():
    boxes = np.array([[0.5, 0.25, 0.5, 0.5]], np.float32)                # cx, cy, w, h of a 100x100 letterbox
    np.testing.assert_allclose(query_boxes_xyxy(boxes, (50, 200), 100), [[50, 0, 150, 50]])


def test_focal_loss_reduces_to_bce_and_downweights_easy_examples():
    logits = torch.tensor([2.0, -1.0, 0.3, -4.0])
    targets = torch.tensor([1.0, 0.0, 1.0, 0.0])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    torch.testing.assert_close(binary_focal_loss_with_logits(logits, targets, alpha=0.5, gamma=0.0), 0.5 * bce)
    per = binary_focal_loss_with_logits(logits, targets, alpha=0.5, gamma=2.0, reduction="none")
    ratio = per / (0.5 * torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none"))
    assert ratio[3] < ratio[1] < ratio[2]                              # confident-correct entries count least


def test_hoi_loss_gives_unseen_and_masked_entries_no_gradient():
    b, p, c = 1, 3, 5
    pair_logits = torch.zeros(b, p, c, requires_grad=True)
    global_logits = torch.zeros(b, c, requires_grad=True)
    targets = torch.zeros(b, p, c)
    targets[0, 0, 1] = 1
    mask = torch.zeros(b, p, c, dtype=torch.bool)
    mask[0, 0, :] = True
    seen = torch.tensor([True, True, True, False, True])
    mask[0, 0, 3] = False                                             # unseen class masked as the trainer does
    image_t = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0]])                # class 3 present but unseen
    out = HOILoss()(pair_logits, global_logits, targets, mask, image_t, seen)
    out["loss"].backward()
    assert out["n_pos"] == 1
    assert pair_logits.grad[0, 1:].abs().sum() == 0 and pair_logits.grad[0, 0, 3] == 0
    assert pair_logits.grad[0, 0, 1] < 0 and pair_logits.grad[0, 0, 0] > 0
    assert global_logits.grad[0, 3] == 0 and global_logits.grad[0, 1] < 0 and global_logits.grad[0, 0] > 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(4), torch.tensor([0.0, 1, 0, 0]),
                                                                   reduction="sum")
    torch.testing.assert_close(out["loss_global"], expected)


@pytest.mark.parametrize("n_pos", [0, 2])
def test_hoi_loss_is_finite_without_positives(n_pos):
    logits = torch.randn(2, 4, 6)
    targets = torch.zeros(2, 4, 6)
    targets[0, 0, :n_pos] = 1
    out = HOILoss()(logits, torch.randn(2, 6), targets, torch.ones(2, 4, 6, dtype=torch.bool), torch.zeros(2, 6),
                    torch.ones(6, dtype=torch.bool))
    assert torch.isfinite(out["loss"]) and out["n_pos"] == n_pos
