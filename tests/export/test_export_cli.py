"""`hoi-edge export` / `bake`: clear errors, no partial artifacts, vocabulary re-targeting."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from hoi_edge import HOIDetector
from hoi_edge.cli import main
from hoi_edge.core.errors import ArtifactError, VocabularyError
from hoi_edge.runtime.artifact import load_artifact
from hoi_edge.runtime.manifest import Manifest
from hoi_edge.targets_registry import read_manifest


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_unknown_target_is_rejected_before_any_work(tiny_checkpoint, tmp_path):
    res = CliRunner().invoke(main, ["export", "--target", "tflite", "--model", str(tiny_checkpoint),
                                    "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "'tflite' is not one of openvino" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "a").exists() and not _leftovers(tmp_path)


def test_option_errors_come_before_the_default_model_is_built(tmp_path, monkeypatch):
    import hoi_edge.weights.defaults

    def no_model(**_):
        raise AssertionError("the default model must not be built before the options are checked")

    monkeypatch.setattr(hoi_edge.weights.defaults, "default_checkpoint", no_model)
    res = CliRunner().invoke(main, ["export", "--target", "tflite", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "'tflite' is not one of openvino" in res.output, res.output
    res = CliRunner().invoke(main, ["export", "--target", "openvino", "--int8", "--calib", str(tmp_path / "photos"),
                                    "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "calibration source not found" in res.output, res.output
    assert not (tmp_path / "a").exists() and not _leftovers(tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--target", "onnx", "--val", "PHOTOS"], "--val (accuracy-aware INT8) needs --int8, not precision fp32"),
    (["--target", "executorch", "--int8", "--max-drop", "0.05"], "--max-drop needs a validation set: pass --val"),
    (["--target", "openvino", "--val", "PHOTOS"], "--val (accuracy-aware INT8) needs --int8, not precision fp32"),
    (["--target", "openvino", "--int8", "--max-drop", "0.05"], "--max-drop needs a validation set: pass --val"),
    (["--target", "openvino", "--int8", "--val", "MISSING"], "validation source not found"),
    (["--target", "openvino", "--int8", "--val", "PHOTOS", "--max-drop", "1.5"],
     "--max-drop is a drop of each unit's task metric"),
    (["--target", "executorch", "--distill-steps", "3"], "distillation is available for openvino, onnx, executorch "
                                                         "int8 exports, not executorch fp32"),
])
def test_accuracy_control_options_are_checked(tiny_checkpoint, shared_data, tmp_path, args, message):
    photos = str(shared_data / "photos")
    args = [{"PHOTOS": photos, "MISSING": str(tmp_path / "nope")}.get(a, a) for a in args]
    res = CliRunner().invoke(main, ["export", "--model", str(tiny_checkpoint), "--calib", photos,
                                    "--out", str(tmp_path / "a"), *args])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output, res.output
    assert not (tmp_path / "a").exists() and not _leftovers(tmp_path)


def test_missing_checkpoint(tmp_path):
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--model", str(tmp_path / "nope.pt"),
                                    "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "checkpoint not found" in res.output and "nope.pt" in res.output
    assert not (tmp_path / "a").exists()


def test_int8_without_or_with_unreadable_calibration(tiny_checkpoint, tmp_path):
    args = ["export", "--target", "openvino", "--int8", "--model", str(tiny_checkpoint), "--out", str(tmp_path / "a")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "INT8 needs calibration images" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(main, args + ["--calib", str(empty)])
    assert res.exit_code == 1 and "holds no images" in res.output
    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not an image")
    res = CliRunner().invoke(main, args + ["--calib", str(bad)])
    assert res.exit_code == 1 and "cannot decode image" in res.output and "x.jpg" in res.output
    assert not (tmp_path / "a").exists() and not _leftovers(tmp_path)


def test_precision_not_supported_by_target(tiny_checkpoint, tmp_path):
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--precision", "fp16", "--model",
                                    str(tiny_checkpoint), "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "supports precisions" in res.output


def test_export_with_custom_vocab_then_rebake(tiny_checkpoint, tmp_path, shared_data):
    vocab = tmp_path / "v.json"
    vocab.write_text(json.dumps({"name": "stable", "verbs": ["ride", "feed"], "objects": ["horse", "bicycle"],
                                 "hois": [["ride", "horse"], ["feed", "horse"], ["ride", "bicycle"]]}))
    out = tmp_path / "ov"
    res = CliRunner().invoke(main, ["export", "--target", "openvino", "--model", str(tiny_checkpoint),
                                    "--vocab", str(vocab), "--out", str(out)])
    assert res.exit_code == 0, res.output
    art = HOIDetector.from_artifact(out)
    names = {d.hoi_name for p in sorted((shared_data / "photos").glob("*"))[:6] for d in art.predict(p)}
    assert names and names <= {"ride horse", "feed horse", "ride bicycle"}
    # exists -> refused without --overwrite
    res = CliRunner().invoke(main, ["export", "--target", "openvino", "--model", str(tiny_checkpoint), "--out", str(out)])
    assert res.exit_code == 1 and "already exists" in res.output
    # re-bake back to HICO without touching the networks
    networks = {f.name: f.read_bytes() for f in out.iterdir() if f.suffix in (".xml", ".bin")}
    assert len(networks) == 6
    res = CliRunner().invoke(main, ["bake", "--artifact", str(out), "--model", str(tiny_checkpoint), "--vocab", "hico"])
    assert res.exit_code == 0, res.output
    assert "vocabulary 'hico-det' (600 classes, 117 verbs, 80 objects" in res.output     # not only a hash
    art = HOIDetector.from_artifact(out)
    assert art.vocab.num_classes == 600
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.suffix in (".xml", ".bin")} == networks
    assert not _leftovers(out)
    from compress.bake import bake_text_embeddings
    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.weights.checkpoint import load_model

    fresh = bake_text_embeddings(load_model(tiny_checkpoint), load_vocabulary("hico"))
    np.testing.assert_array_equal(np.load(out / "text_embeddings.npy"), fresh)
    manifest = Manifest.read(out)
    assert manifest.text_embeddings_sha256 == hashlib.sha256((out / "text_embeddings.npy").read_bytes()).hexdigest()
    assert manifest.vocabulary_fingerprint == load_vocabulary("hico").fingerprint()


@pytest.fixture
def ov_copy(artifact_factory, tmp_path):
    """A private copy of the FP32 OpenVINO artifact, free to tamper with."""
    folder = tmp_path / "ov"
    shutil.copytree(artifact_factory("openvino", "fp32"), folder)
    return folder


def test_bake_with_an_unknown_object_fails_and_leaves_the_artifact_untouched(ov_copy, tiny_checkpoint, tmp_path):
    vocab = tmp_path / "zoo.json"
    vocab.write_text(json.dumps({"name": "zoo", "verbs": ["ride", "feed"], "objects": ["unicorn", "horse"],
                                 "hois": [["ride", "unicorn"], ["feed", "horse"]]}))
    before = {f.name: f.read_bytes() for f in ov_copy.iterdir()}
    res = CliRunner().invoke(main, ["bake", "--artifact", str(ov_copy), "--model", str(tiny_checkpoint),
                                    "--vocab", str(vocab)])
    assert res.exit_code == 1 and "objects the detector cannot find: 'unicorn'" in res.output, res.output
    assert {f.name: f.read_bytes() for f in ov_copy.iterdir()} == before
    HOIDetector.from_artifact(ov_copy)


def test_tampered_text_bank_is_reported_on_load(ov_copy):
    vocab_file, emb_file = ov_copy / "vocabulary.json", ov_copy / "text_embeddings.npy"
    vocab, emb = vocab_file.read_text(), np.load(emb_file)
    data = json.loads(vocab)
    data["verb_phrases"][0] = "tampered with"
    vocab_file.write_text(json.dumps(data))
    # the per-file sha256 (manifest format 3) names it first; the fingerprint check stands behind it
    with pytest.raises(ArtifactError, match=r"vocabulary.json does not match the manifest .*hoi-edge bake"):
        HOIDetector.from_artifact(ov_copy)
    with pytest.raises(VocabularyError, match=r"vocabulary.json does not match .*hoi-edge bake"):
        load_artifact(ov_copy, verify=False)
    vocab_file.write_text(vocab)
    np.save(emb_file, emb[::-1].copy())                 # same shape, other rows: only the hash can tell
    with pytest.raises(ArtifactError, match=r"text_embeddings.npy does not match the manifest \(sha256 differs\)"):
        load_artifact(ov_copy, verify=False)
    manifest = Manifest.read(ov_copy)                   # a consistent hash, but the wrong width
    np.save(emb_file, np.zeros((emb.shape[0], emb.shape[1] + 1), np.float32))
    manifest.text_embeddings_sha256 = hashlib.sha256(emb_file.read_bytes()).hexdigest()
    manifest.write(ov_copy)
    with pytest.raises(ArtifactError, match=rf"text_embeddings.npy has shape .* {emb.shape[1]}-wide pair embeddings"):
        HOIDetector.from_artifact(ov_copy)


@pytest.mark.parametrize("field, value, message", [
    ("precision", "int4", "unknown precision 'int4'"),
    ("precision", "fp16", "precision 'fp16' is not one of target 'onnx'"),
    ("target", "tflite", "unknown target 'tflite'"),
])
def test_manifest_values_are_validated(ov_copy, field, value, message):
    data = json.loads((ov_copy / "manifest.json").read_text())
    data.update({"target": "onnx"} if field == "precision" and value == "fp16" else {})
    data[field] = value
    (ov_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message):
        read_manifest(ov_copy)
    with pytest.raises(ArtifactError, match=message):
        HOIDetector.from_artifact(ov_copy)


def test_detect_with_an_artifact_rejects_vocab(tiny_checkpoint, tmp_path, shared_data):
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "zidane.jpg"),
                                    "--artifact", str(tmp_path), "--vocab", "hico"])
    assert res.exit_code == 1 and "hoi-edge bake --artifact" in res.output and "hoi-edge export" not in res.output


def test_format_1_artifacts_still_load(ov_copy):
    data = json.loads((ov_copy / "manifest.json").read_text())
    data.pop("text_embeddings_sha256")
    data["format_version"] = 1
    for unit in data["units"].values():
        unit.pop("output_shapes")
    (ov_copy / "manifest.json").write_text(json.dumps(data))
    assert HOIDetector.from_artifact(ov_copy).manifest.text_embeddings_sha256 is None
