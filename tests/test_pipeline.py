"""End-to-end predict() on real photos with the tiny random model: contracts, not accuracy."""

import copy

import numpy as np
import pytest
import torch

from hoi_edge import HOIDetector
from hoi_edge.core.errors import InputFileError, VocabularyError, WeightsError
from hoi_edge.pipeline.postprocess import feasible_pairs
from hoi_edge.pipeline.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, load_image
from hoi_edge.weights.checkpoint import load_model, save_checkpoint


def test_predict_on_real_photos(tiny_detector, photos, hico_images):
    assert len(photos) >= 10 and len(hico_images) == 2
    vocab = tiny_detector.vocab
    for path in photos + hico_images:
        image = load_image(path)
        h, w = image.shape[:2]
        result = tiny_detector.run(image)
        dets = result.detections
        assert 0 < len(dets) <= tiny_detector.spec.max_detections
        scores = [d.score for d in dets]
        assert scores == sorted(scores, reverse=True) and 0 < scores[-1] and scores[0] <= 1
        inst = result.instances
        classes = [tiny_detector.spec.detector_classes[c].replace("_", " ") for c in inst.classes]
        for d in dets[:20]:
            # object prior: the class's object is what the detector called the instance at the object box
            j = next(j for j in np.flatnonzero(inst.valid) if tuple(float(v) for v in inst.boxes[j]) == d.object_box)
            assert classes[j] == d.object_label == vocab.objects[vocab.hois[d.hoi][1]]
            i = next(i for i in np.flatnonzero(inst.valid) if tuple(float(v) for v in inst.boxes[i]) == d.human_box)
            assert classes[i] == "person" and i != j
            for box in (d.human_box, d.object_box):
                assert 0 <= box[0] <= box[2] <= w and 0 <= box[1] <= box[3] <= h
            assert d.human_box != d.object_box or d.human_score != d.object_score
        assert set(result.timings) == {"preprocess", "detector", "clip_image", "hoi_head", "postprocess"}


def test_pairs_only_from_humans_to_other_valid_instances(tiny_detector, photos):
    inst = tiny_detector.run(photos[0]).instances
    k = inst.valid.size
    ok = feasible_pairs(inst).reshape(k, k)
    for i in range(k):
        for j in range(k):
            assert ok[i, j] == (inst.valid[i] and inst.human[i] and inst.valid[j] and i != j)


def test_predict_is_deterministic(tiny_detector, hico_images):
    a = tiny_detector.predict(hico_images[0])
    b = tiny_detector.predict(hico_images[0])
    assert a == b


def test_checkpoint_round_trip_gives_identical_predictions(tiny_model, tiny_detector, tmp_path, photos):
    path = save_checkpoint(tiny_model, tmp_path / "again.pt")
    reloaded = HOIDetector.from_checkpoint(path)
    assert reloaded.predict(photos[3]) == tiny_detector.predict(photos[3])
    sd1, sd2 = tiny_model.state_dict(), load_model(path).state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)


def test_slim_checkpoint_reloads_frozen_parts_from_their_sources(tiny_model, tiny_detector, tiny_checkpoint,
                                                                  tmp_path, photos):
    with pytest.raises(WeightsError, match="random or unnamed"):      # nothing to reload them from
        save_checkpoint(tiny_model, tmp_path / "refused.pt", include_frozen=False)
    assert not (tmp_path / "refused.pt").exists()
    torch.save(tiny_model.clip.state_dict(), tmp_path / "clip.bin")
    torch.save({"model": tiny_model.detector.state_dict()}, tmp_path / "detr.pth")
    named = copy.deepcopy(tiny_model)
    named.cfg.clip.pretrained, named.cfg.detector.weights = str(tmp_path / "clip.bin"), str(tmp_path / "detr.pth")
    path = save_checkpoint(named, tmp_path / "head_only.pt", include_frozen=False)
    assert path.stat().st_size < 0.2 * tiny_checkpoint.stat().st_size      # head + prompts only
    assert HOIDetector.from_checkpoint(path).predict(photos[3]) == tiny_detector.predict(photos[3])


def test_letterbox_keeps_aspect_and_pads_with_mean():
    image = np.full((50, 100, 3), 255, np.uint8)
    x = Letterbox(64, IMAGENET_MEAN, IMAGENET_STD)(image)
    assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32
    assert np.allclose(x[0, :, :32], ((1 - np.array(IMAGENET_MEAN)) / IMAGENET_STD)[:, None, None], atol=1e-5)
    assert np.all(x[0, :, 32:] == 0)


def test_corrupt_image_is_a_clear_error(tiny_detector, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(InputFileError, match="cannot decode image .*broken.jpg"):
        tiny_detector.predict(bad)
    with pytest.raises(InputFileError, match="image not found"):
        tiny_detector.predict(tmp_path / "missing.png")
    with pytest.raises(InputFileError, match="expected an RGB uint8 array"):
        tiny_detector.predict(np.zeros((10, 10), np.float32))


def test_missing_or_corrupt_weights_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="checkpoint not found"):
        HOIDetector.from_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="corrupt"):
        HOIDetector.from_checkpoint(junk)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a hoi-edge checkpoint"):
        HOIDetector.from_checkpoint(tmp_path / "other.pt")


def test_detector_weights_that_do_not_fit(tmp_path):
    from hoi_edge.model.config import DetectorConfig
    from hoi_edge.model.detector import DETR
    from hoi_edge.model.weights import load_detector_weights

    torch.save({"model": {"class_embed.weight": torch.zeros(3, 3)}}, tmp_path / "detr.pth")
    with pytest.raises(WeightsError, match="do not fit the model: .* missing .* wrong shape"):
        load_detector_weights(DETR(DetectorConfig(backbone="resnet18")), str(tmp_path / "detr.pth"))


def test_custom_vocabulary_changes_reported_classes(tiny_checkpoint, tmp_path, photos):
    import json

    vocab_file = tmp_path / "v.json"
    vocab_file.write_text(json.dumps({"name": "stable", "verbs": ["ride", "feed"], "objects": ["horse", "bicycle"],
                                      "hois": [["ride", "horse"], ["feed", "horse"], ["ride", "bicycle"]]}))
    det = HOIDetector.from_checkpoint(tiny_checkpoint, vocabulary=vocab_file)
    assert det.text_embeddings.shape[0] == 3
    names = {d.hoi_name for p in photos for d in det.predict(p)}
    assert names and names <= {"ride horse", "feed horse", "ride bicycle"}


def test_vocabulary_with_objects_the_detector_cannot_find(tiny_checkpoint, tmp_path):
    import json

    vocab_file = tmp_path / "v.json"
    vocab_file.write_text(json.dumps({"verbs": ["ride"], "objects": ["dragon"], "hois": [["ride", "dragon"]]}))
    with pytest.raises(VocabularyError, match="objects the detector cannot find: 'dragon'"):
        HOIDetector.from_checkpoint(tiny_checkpoint, vocabulary=vocab_file)
