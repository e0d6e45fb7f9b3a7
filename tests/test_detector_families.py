"""Detector families: the registry builds DETR and NanoDet, old DETR configs/manifests still mean DETR, one
box-mapping rule for both input transforms, probability-score instance selection, and NanoDet's real
detections on real photos in original image pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hoi_edge.core.conventions import PROBABILITIES, SOFTMAX_NO_OBJECT
from hoi_edge.core.geometry import pairwise_iou_continuous
from hoi_edge.data.vocabulary import load_vocabulary
from hoi_edge.model.config import DetectorConfig, ModelConfig, clip4hoi_nanodet_tiny, clip4hoi_tiny
from hoi_edge.model.detectors import FAMILIES, build_detector, detector_class_names, family
from hoi_edge.pipeline.postprocess import LabelMap, select_instances
from hoi_edge.pipeline.preprocess import Letterbox, boxes_to_pixels, load_image
from hoi_edge.pipeline.spec import PipelineSpec
from train.targets import query_boxes_xyxy

# upstream pre-processing, score >= 0.3 (docs/nanodet_tfjs_facts.md): x1, y1, x2, y2 in original pixels
ZIDANE = [("person", [147, 204, 1134, 721]), ("person", [710, 45, 1152, 722]), ("tie", [456, 332, 677, 722])]
BUS = [("person", [54, 392, 217, 893]), ("bus", [18, 217, 791, 750]), ("person", [682, 399, 813, 879]),
       ("person", [225, 402, 347, 853]), ("person", [2, 568, 69, 866])]


def test_registry_builds_both_families_with_their_label_spaces():
    detr_cfg = clip4hoi_tiny().detector
    nano_cfg = dataclasses.replace(clip4hoi_nanodet_tiny().detector, weights=None)
    assert set(FAMILIES) == {"detr", "nanodet"}
    x_detr, x_nano = torch.zeros(1, 3, detr_cfg.image_size, detr_cfg.image_size), torch.zeros(1, 3, 416, 416)
    for cfg, x, n_scores, n_classes in ((detr_cfg, x_detr, 92, 92), (nano_cfg, x_nano, 80, 80)):
        module = build_detector(cfg).eval()
        fam = family(cfg)
        with torch.no_grad():
            scores, boxes, feats = module(x)
        assert scores.shape[-1] == n_scores and boxes.shape[-1] == 4
        assert feats.shape[-1] == fam.feature_dim(module)
        names = detector_class_names(cfg)
        assert len(names) == cfg.num_classes and "person" in names and "tie" in names
    assert detector_class_names(91) == detector_class_names(DetectorConfig())        # the old int form: DETR
    assert family(nano_cfg).score_kind == PROBABILITIES and family(detr_cfg).score_kind == SOFTMAX_NO_OBJECT
    with pytest.raises(Exception, match="unknown detector family 'yolo'"):
        family("yolo")


def test_old_configs_and_manifests_load_as_detr(tiny_model):
    old = clip4hoi_tiny().to_dict()
    del old["detector"]["family"], old["detector"]["reg_max"], old["detector"]["strides"]
    old["hoi"]["nms_threshold"] = 0.7                     # saved explicitly before family defaults existed
    cfg = ModelConfig.from_dict(old)
    assert cfg.detector.family == "detr" and cfg.hoi.nms_threshold == 0.7
    from hoi_edge.runtime.torch_runner import pipeline_spec

    spec = pipeline_spec(tiny_model).to_dict()
    for key in ("detector_family", "detector_score_kind", "detector_resize", "detector_channels"):
        spec.pop(key)                                      # a manifest written before detector families
    back = PipelineSpec.from_dict(spec)
    assert (back.detector_family, back.detector_score_kind, back.detector_resize, back.detector_channels) == \
        ("detr", SOFTMAX_NO_OBJECT, "letterbox", "rgb")
    assert back.nms_threshold == 0.7 and back.box_score_threshold == 0.0


def test_box_mapping_is_one_rule_for_letterbox_and_stretch():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0.05, 0.6, size=(50, 4)).astype(np.float32)
    h, w = 480, 640
    # letterbox: bit-identical to the formula select_instances used before families existed
    scale = 128 / max(h, w)
    cx, cy, bw, bh = (boxes * 128 / scale).T
    legacy = np.clip(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1), 0, [w, h, w, h])
    assert np.array_equal(boxes_to_pixels(boxes, (h, w), 128, "letterbox"), legacy.astype(np.float32))
    # stretch: x by the width, y by the height
    box = np.array([[0.5, 0.5, 0.5, 0.25]], np.float32)
    np.testing.assert_allclose(boxes_to_pixels(box, (h, w), 416, "stretch"), [[160, 180, 480, 300]])
    # training's twin is the same function, for both modes
    for mode in ("letterbox", "stretch"):
        assert np.array_equal(query_boxes_xyxy(boxes, (h, w), 416, mode), boxes_to_pixels(boxes, (h, w), 416, mode))
    with pytest.raises(ValueError, match="resize mode"):
        boxes_to_pixels(boxes, (h, w), 416, "crop")


def test_stretch_transform_is_bgr_without_aspect_and_maps_boxes_back():
    image = np.zeros((100, 300, 3), np.uint8)
    image[..., 0], image[..., 2] = 200, 10                 # RGB: strong red, weak blue
    t = Letterbox(416, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5), resize="stretch", channels="bgr")
    x = t(image)
    assert x.shape == (1, 3, 416, 416)
    np.testing.assert_allclose(x[0, 0], (10 / 255 - 0.1) / 0.5, atol=1e-6)      # channel 0 is blue, no padding
    np.testing.assert_allclose(x[0, 2], (200 / 255 - 0.3) / 0.5, atol=1e-6)
    full = t.boxes_to_pixels(np.array([[0.5, 0.5, 1.0, 1.0]], np.float32), (100, 300))
    np.testing.assert_allclose(full, [[0, 0, 300, 100]])


def test_probability_scores_select_best_class_threshold_classwise_nms_and_top_k():
    names = detector_class_names(clip4hoi_nanodet_tiny().detector)
    labels = LabelMap.build(names, load_vocabulary("hico"))
    person, tie, cup = names.index("person"), names.index("tie"), names.index("cup")
    n = 6
    scores = np.zeros((1, n, 80), np.float32)
    boxes = np.tile(np.array([0.5, 0.5, 0.2, 0.4], np.float32), (1, n, 1))
    scores[0, 0, person], scores[0, 1, person] = 0.9, 0.8       # same box: NMS keeps the 0.9 one
    scores[0, 2, tie], scores[0, 2, person] = 0.7, 0.1           # same box, another class: kept (class-wise)
    scores[0, 3, cup] = 0.15                                     # below the threshold
    boxes[0, 4] = [0.1, 0.1, 0.1, 0.1]
    scores[0, 4, person] = 0.5
    boxes[0, 5] = [0.8, 0.8, 0.1, 0.1]
    scores[0, 5, cup] = 0.4
    feats = np.arange(n, dtype=np.float32)[None, :, None].repeat(3, 2)
    inst = select_instances(scores, boxes, feats, labels, (200, 400), 416, 3, 0.2, 0.5, score_kind=PROBABILITIES,
                            resize="stretch")
    assert inst.valid.tolist() == [True, True, True]             # top-K = 3 of the 4 survivors
    assert [names[c] for c in inst.classes] == ["person", "tie", "person"]
    np.testing.assert_allclose(inst.scores, [0.9, 0.7, 0.5])
    assert inst.features[:, 0].tolist() == [0, 2, 4]
    np.testing.assert_allclose(inst.boxes[0], [160, 60, 240, 140])   # stretch: x by 400, y by 200
    no_nms = select_instances(scores, boxes, feats, labels, (200, 400), 416, 6, 0.2, None, score_kind=PROBABILITIES,
                              resize="stretch")
    assert no_nms.valid.sum() == 5


def _found(detector, path):
    inst = detector.run(path).instances
    names = detector.spec.detector_classes
    return [(names[c], float(s), b) for c, s, b, v in zip(inst.classes, inst.scores, inst.boxes, inst.valid) if v]


def _assert_found(found, expected, min_iou=0.8):
    for name, box in expected:
        ious = [pairwise_iou_continuous(np.array([box], float), np.array([b], float))[0, 0]
                for n, _, b in found if n == name]
        assert ious and max(ious) >= min_iou, (name, box, found)


@pytest.fixture(scope="module")
def nanodet_detector(nanodet_checkpoint):
    from hoi_edge import HOIDetector

    return HOIDetector.from_checkpoint(nanodet_checkpoint)


def test_nanodet_finds_people_tie_and_bus_in_original_pixels(nanodet_detector, shared_data):
    spec = nanodet_detector.spec
    assert (spec.detector_family, spec.detector_resize, spec.detector_channels) == ("nanodet", "stretch", "bgr")
    zidane = _found(nanodet_detector, shared_data / "photos" / "zidane.jpg")
    _assert_found(zidane, ZIDANE)
    people = sorted(s for n, s, _ in zidane if n == "person")
    assert people[-1] > 0.7 and people[-2] > 0.55
    bus = _found(nanodet_detector, shared_data / "photos" / "bus.jpg")
    _assert_found(bus, BUS)
    assert {n for n, s, _ in bus if s >= 0.3} == {"person", "bus"}   # nothing else above 0.3
    h, w = load_image(shared_data / "photos" / "bus.jpg").shape[:2]
    assert all(0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h for _, _, b in bus)


def test_nanodet_checkpoint_round_trip(nanodet_model, nanodet_checkpoint, nanodet_detector, shared_data):
    from hoi_edge.weights.checkpoint import load_model

    again = load_model(nanodet_checkpoint)
    assert again.cfg.detector.family == "nanodet" and again.cfg.detector.weights == nanodet_model.cfg.detector.weights
    a, b = nanodet_model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["head.interactor.human_proj.weight"].shape[1] == again.detector_feature_dim == again.detector.feature_dim


def test_detector_weight_files_pick_their_family(tmp_path, nanodet_files):
    from hoi_edge.model.detectors import family_of_weights_file

    torch.save({"model": {"backbone.0.body.conv1.weight": torch.zeros(1)}}, tmp_path / "detr.pth")
    torch.save({"head.gfl_cls.0.weight": torch.zeros(1)}, tmp_path / "nanodet.pth")
    assert family_of_weights_file(tmp_path / "detr.pth") == "detr"
    assert family_of_weights_file(tmp_path / "nanodet.pth") == "nanodet"
    assert family_of_weights_file(nanodet_files[0]) == "nanodet"
    assert family_of_weights_file(tmp_path / "model.ckpt") == "nanodet"
    assert family_of_weights_file(tmp_path / "unknown.pth") == "detr"       # nobody claims it: DETR's loader reports


def test_int8_keeps_each_familys_own_sensitive_detector_layers_in_fp():
    from compress.quantize import QuantizationConfig

    assert QuantizationConfig().ignored_scope("detector").patterns == [r".*class_embed.*", r".*bbox_embed.*"]
    nano = QuantizationConfig(detector_family="nanodet").ignored_scope("detector").patterns
    assert nano == list(FAMILIES["nanodet"].sensitive_layers) and r".*class_embed.*" not in nano
    everything = QuantizationConfig(detector_family="nanodet", keep_sensitive_fp=False)
    assert everything.ignored_scope("detector").patterns == []
    assert QuantizationConfig(detector_family="nanodet").ignored_scope("hoi_head").patterns == \
        QuantizationConfig().ignored_scope("hoi_head").patterns


def test_checkpoint_written_before_detector_families_loads_as_detr(tiny_checkpoint, tiny_detector, tmp_path, photos):
    data = torch.load(tiny_checkpoint, weights_only=True)
    for key in ("family", "reg_max", "strides"):
        data["config"]["detector"].pop(key)
    data["config"]["hoi"]["nms_threshold"] = 0.7          # old configs stored both thresholds as numbers
    torch.save(data, tmp_path / "old.pt")
    from hoi_edge import HOIDetector

    old = HOIDetector.from_checkpoint(tmp_path / "old.pt")
    assert old.spec.detector_family == "detr" and old.spec.nms_threshold == 0.7
    assert old.predict(photos[3]) == tiny_detector.predict(photos[3])
