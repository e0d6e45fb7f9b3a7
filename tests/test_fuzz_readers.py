"""Property-based fuzzing (hypothesis) of every reader of user files: images, vocabulary JSON, artifact manifests,
prediction JSON lines, HICO annotation JSON and checkpoints. The property, for any input: a valid result, or a
hoi-edge error (``HOIEdgeError``) whose message names the file; never another exception (a traceback).

Inputs are valid files mutated (truncated, bytes flipped, keys dropped or given values of the wrong type) and
files made from scratch. Runs are derandomized (the same examples on every machine, so CI is reproducible),
bounded in number, without a deadline (the machine is shared) and without an example database on disk.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hoi_edge.core.errors import HOIEdgeError

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def typed_or_valid(read, path: Path, check) -> None:
    """``read(path)`` returns something ``check`` accepts, or raises a HOIEdgeError naming ``path``."""
    try:
        result = read(path)
    except HOIEdgeError as exc:
        assert str(path) in str(exc) or path.name in str(exc), f"the error does not name the file: {exc}"
        return
    check(result)


# --- generic mutations --------------------------------------------------------------------------------------

@st.composite
def mutated_bytes(draw, base: bytes, keep: int = 0):
    """``base`` truncated, with bytes flipped or inserted (the first ``keep`` bytes untouched), or random bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "random", "empty"]))
    if kind == "truncate":
        return base[: draw(st.integers(0, len(base) - 1))]
    if kind == "flip":
        data = bytearray(base)
        for i, v in draw(st.lists(st.tuples(st.integers(keep, len(base) - 1), st.integers(0, 255)), min_size=1,
                                  max_size=8)):
            data[i] = v
        return bytes(data)
    if kind == "insert":
        i = draw(st.integers(keep, len(base)))
        return base[:i] + draw(st.binary(min_size=1, max_size=64)) + base[i:]
    if kind == "random":
        return draw(st.binary(max_size=512))
    return b""


JUNK = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True)
                    | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@st.composite
def mutated_json(draw, base):
    """``base`` (a JSON-able structure) with one to three changes: a key dropped, a value replaced by junk
    (wrong type, negative, NaN, nested), an entry of a list replaced or removed, an unknown key added."""
    data = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        containers = _containers(data)
        parent, key = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["junk", "drop", "add"]))
        if action == "drop" and isinstance(parent, dict) and key in parent:
            del parent[key]
        elif action == "drop" and isinstance(parent, list) and 0 <= key < len(parent):
            parent.pop(key)
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(JUNK)
        elif (isinstance(parent, dict) and key in parent) or (isinstance(parent, list) and 0 <= key < len(parent)):
            parent[key] = draw(JUNK)
    return data


def _containers(data, out=None):
    out = [] if out is None else out
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((data, k))
            _containers(v, out)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append((data, i))
            _containers(v, out)
    return out or [({"": None}, "")]


def json_file_contents(base):
    """File bytes: the base mutated as data, or its text cut short / damaged, or not JSON at all."""
    as_text = json.dumps(base).encode()
    return st.one_of(mutated_json(base).map(lambda d: json.dumps(d, allow_nan=True).encode()),
                     mutated_bytes(as_text), JUNK.map(lambda d: json.dumps(d).encode()))


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


DEEP = b"[" * 100_000 + b"]" * 100_000           # json.loads: RecursionError
HUGE_INT = b'{"name": ' + b"9" * 5000 + b"}"    # json.loads: ValueError (int digit limit)


# --- images ---------------------------------------------------------------------------------------------------

def _encoded(ext: str) -> bytes:
    rng = np.random.default_rng(0)
    ok, data = cv2.imencode(ext, rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    return data.tobytes()


PNG, JPG = _encoded(".png"), _encoded(".jpg")
PNG_HEADER = 33                                  # signature and IHDR (the size)
JPG_HEADER = JPG.index(b"\xff\xda") + 14          # everything up to the scan data (the size is in SOF)


@FUZZ
@given(data=st.one_of(mutated_bytes(PNG, keep=PNG_HEADER), mutated_bytes(JPG, keep=JPG_HEADER),
                      st.text(max_size=40).map(str.encode)),
       suffix=st.sampled_from([".png", ".jpg", ".webp", ".bmp"]))
def test_image_files(data, suffix):
    """Image header bytes (sizes) are kept: a flipped size could make OpenCV allocate gigabytes, which is
    OpenCV's limit to enforce (OPENCV_IO_MAX_IMAGE_PIXELS), not a reader's crash."""
    from hoi_edge.pipeline.preprocess import load_image

    def check(image):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3

    with tempfile.TemporaryDirectory() as tmp:
        typed_or_valid(load_image, _write(Path(tmp), f"im{suffix}", data), check)


# --- vocabulary JSON --------------------------------------------------------------------------------------------

VOCAB = {"name": "kitchen", "verbs": ["hold", "cut_with"], "objects": ["knife", "cup"],
         "verb_phrases": {"cut_with": "cutting with"}, "hois": [["hold", "knife"], ["cut_with", "knife"], [0, 1]],
         "rare": [1], "splits": {"rf-uc": [0]}}


@FUZZ
@given(data=json_file_contents(VOCAB))
@example(data=DEEP)
@example(data=HUGE_INT)
@example(data=json.dumps({**VOCAB, "verb_phrase": {}}).encode())
def test_vocabulary_files(data):
    from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary

    def check(vocab):
        assert isinstance(vocab, Vocabulary) and vocab.num_classes >= 1
        assert all(0 <= v < len(vocab.verbs) and 0 <= o < len(vocab.objects) for v, o in vocab.hois)

    with tempfile.TemporaryDirectory() as tmp:
        typed_or_valid(load_vocabulary, _write(Path(tmp), "vocab.json", data), check)


# --- artifact manifest ------------------------------------------------------------------------------------------

def _manifest() -> dict:
    from hoi_edge.core.scoring import ScoringParams
    from hoi_edge.pipeline.spec import PipelineSpec
    from hoi_edge.runtime.manifest import Manifest, UnitSpec

    spec = PipelineSpec(detector_size=64, clip_size=32, clip_mean=(0.5, 0.5, 0.5), clip_std=(0.25, 0.25, 0.25),
                        detector_classes=("person", "cup"), max_instances=4, box_score_threshold=0.5,
                        nms_threshold=0.5, max_detections=10,
                        scoring=ScoringParams(1.0, 0.0, 1.0, 0.0, 0.0, 1.0))
    units = {u: UnitSpec(file=f"{u}.onnx", inputs={"images": [1, 3, 64, 64]}, outputs=["out"])
             for u in ("detector", "clip_image", "hoi_head")}
    return Manifest(target="onnx", precision="fp32", units=units, spec=spec, vocabulary_fingerprint="0" * 16,
                    source_checkpoint={"path": "m.pt", "sha256": "0" * 64}, versions={"hoi-edge": "0"},
                    files={"detector.onnx": "0" * 64}).to_dict()


MANIFEST = _manifest()


@FUZZ
@given(data=json_file_contents(MANIFEST))
@example(data=json.dumps({**MANIFEST, "format_version": "3"}).encode())
@example(data=json.dumps({**MANIFEST, "target": ["onnx"]}).encode())
@example(data=json.dumps({**MANIFEST, "units": {"detector": {**MANIFEST["units"]["detector"],
                                                             "file": "../../etc/passwd"}}}).encode())
def test_artifact_manifests(data):
    from hoi_edge.runtime.manifest import MANIFEST as NAME
    from hoi_edge.runtime.manifest import Manifest

    def check(manifest):
        assert isinstance(manifest, Manifest) and manifest.units

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("detector.onnx", "clip_image.onnx", "hoi_head.onnx", "text_embeddings.npy", "vocabulary.json"):
            (folder / name).write_bytes(b"")
        path = _write(folder, NAME, data)
        typed_or_valid(lambda p: Manifest.read(p.parent), path, check)


# --- prediction JSON lines and HICO annotation JSON ----------------------------------------------------------------

ANNOTATIONS = {"images": [
    {"file_name": "a.jpg", "size_wh": [64, 48], "boxes_h": [[1, 2, 30, 40]], "boxes_o": [[10, 5, 60, 45]],
     "hoi": [3], "object": [1], "verb": [2]},
    {"file_name": "b.jpg", "size_wh": [64, 48], "boxes_h": [], "boxes_o": [], "hoi": [], "object": []}]}
ANNOTATIONS_FREDZZHANG = {"filenames": ["a.jpg", "b.jpg"], "size": [[64, 48], [64, 48]],
                          "annotation": [{"boxes_h": [[1, 2, 30, 40]], "boxes_o": [[10, 5, 60, 45]], "hoi": [3],
                                          "object": [0], "verb": [2]},
                                         {"boxes_h": [], "boxes_o": [], "hoi": [], "object": []}],
                          "correspondence": [[i, i % 3, i % 2] for i in range(6)], "rare": [0], "non_rare": [1, 2]}


@FUZZ
@given(data=st.one_of(json_file_contents(ANNOTATIONS), json_file_contents(ANNOTATIONS_FREDZZHANG)))
@example(data=DEEP)
def test_hico_annotation_files(data):
    from hoi_edge.data.hico_json import HicoFile, read_hico_json
    from hoi_edge.eval.groundtruth import GroundTruth, load_groundtruth
    from train.dataset import load_annotations

    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "annotations.json", data)
        typed_or_valid(read_hico_json, path, lambda f: isinstance(f, HicoFile))
        typed_or_valid(load_groundtruth, path, lambda gt: isinstance(gt, GroundTruth) and gt.num_classes > 0)
        typed_or_valid(load_annotations, path, lambda anns: isinstance(anns, list))


PRED = {"image": "a.jpg", "detections": [{"hoi": 3, "score": 0.5, "human_box": [1, 2, 30, 40],
                                          "object_box": [10, 5, 60, 45]}]}


@pytest.fixture(scope="module")
def groundtruth():
    from hoi_edge.eval.groundtruth import load_groundtruth

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gt.json"
        path.write_text(json.dumps(ANNOTATIONS))
        return load_groundtruth(path)


@FUZZ
@given(lines=st.lists(st.one_of(json_file_contents(PRED), st.just(json.dumps(PRED).encode())), min_size=1,
                      max_size=4),
       ending=st.sampled_from([b"\n", b""]))
def test_prediction_files(groundtruth, lines, ending):
    from hoi_edge.eval.predictions import Predictions, read_predictions

    def check(preds):
        assert isinstance(preds, Predictions)
        assert np.isfinite(preds.score).all() and ((0 <= preds.hoi) & (preds.hoi < groundtruth.num_classes)).all()

    with tempfile.TemporaryDirectory() as tmp:
        data = b"\n".join(line.replace(b"\n", b" ") for line in lines) + ending
        typed_or_valid(lambda p: read_predictions(p, groundtruth), _write(Path(tmp), "p.jsonl", data), check)


# --- checkpoints --------------------------------------------------------------------------------------------------

def _checkpoint_payload() -> dict:
    from hoi_edge.data.vocabulary import Vocabulary
    from hoi_edge.model.config import clip4hoi_tiny
    from hoi_edge.weights.checkpoint import FORMAT, FORMAT_VERSION

    vocab = Vocabulary.from_dict(VOCAB | {"objects": ["person", "cup"], "hois": [["hold", "cup"]],
                                          "verb_phrases": {}, "rare": [], "splits": {}})
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": clip4hoi_tiny().to_dict(),
            "vocabulary": vocab.to_dict(), "includes_frozen": True, "extra": {}}


PAYLOAD = _checkpoint_payload()


def _saved(payload: dict, state: dict) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({**payload, "state_dict": state}, buffer)
    return buffer.getvalue()


SMALL = _saved(PAYLOAD, {"head.w": torch.zeros(2, 2)})


@FUZZ
@given(data=st.one_of(mutated_bytes(SMALL), mutated_json({k: v for k, v in PAYLOAD.items() if k != "config"})
                      .map(lambda p: _saved({**p, "config": PAYLOAD["config"]} if "format" in p else p,
                                            {"w": torch.ones(1)}))))
@example(data=_saved({**PAYLOAD, "format_version": "1"}, {}))
@example(data=_saved({**PAYLOAD, "config": [1, 2]}, {}))
@example(data=_saved({**PAYLOAD, "state_dict_x": 1}, {"w": [1, 2]}))
def test_checkpoint_files(data):
    """``read_checkpoint`` and the cheap first steps of ``load_model`` (the config, the vocabulary, the state's
    shape), on files damaged as bytes and as structures."""
    from hoi_edge.weights.checkpoint import read_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        typed_or_valid(read_checkpoint, _write(Path(tmp), "model.pt", data), lambda d: isinstance(d, dict))


@settings(FUZZ, max_examples=12)
@given(config=mutated_json(PAYLOAD["config"]))
@example(config={"hoi": "x"})
@example(config=[1])
def test_checkpoint_configs(config):
    """A checkpoint whose model config is damaged: load_model names the file (building the tiny model when the
    damage leaves it buildable, then finding the state dict does not fit it)."""
    from hoi_edge.weights.checkpoint import load_model

    with tempfile.TemporaryDirectory() as tmp:
        path = _write(Path(tmp), "model.pt", _saved({**PAYLOAD, "config": config}, {"w": torch.ones(1)}))
        typed_or_valid(load_model, path, lambda m: m is not None)


def test_the_fuzz_inputs_include_valid_files(groundtruth):
    """The bases the mutations start from are valid: the suite also exercises the success path."""
    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.eval.groundtruth import load_groundtruth
    from hoi_edge.eval.predictions import read_predictions
    from hoi_edge.pipeline.preprocess import load_image
    from hoi_edge.runtime.manifest import Manifest
    from hoi_edge.weights.checkpoint import read_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        assert load_image(_write(tmp, "a.png", PNG)).shape == (12, 16, 3)
        assert load_image(_write(tmp, "a.jpg", JPG)).shape == (12, 16, 3)
        assert load_vocabulary(_write(tmp, "v.json", json.dumps(VOCAB).encode())).num_classes == 3
        assert len(read_predictions(_write(tmp, "p.jsonl", json.dumps(PRED).encode() + b"\n"), groundtruth)) == 1
        assert read_checkpoint(_write(tmp, "m.pt", SMALL))["format_version"] >= 1
        for name in ("detector.onnx", "clip_image.onnx", "hoi_head.onnx", "text_embeddings.npy", "vocabulary.json"):
            (tmp / name).write_bytes(b"")
        _write(tmp, "manifest.json", json.dumps(MANIFEST).encode())
        assert Manifest.read(tmp).spec.detector_classes == ("person", "cup")
        for layout in (ANNOTATIONS, ANNOTATIONS_FREDZZHANG):
            assert load_groundtruth(_write(tmp, "gt.json", json.dumps(layout).encode())).num_pairs == 1
