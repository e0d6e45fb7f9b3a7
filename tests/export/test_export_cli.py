"""`hoi-edge export` / `bake`: clear errors, no partial artifacts, vocabulary re-targeting."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hoi_edge.cli import main
from hoi_edge.pipeline import HOIDetector


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_unknown_target_is_rejected_before_any_work(tiny_checkpoint, tmp_path):
    res = CliRunner().invoke(main, ["export", "--target", "tflite", "--model", str(tiny_checkpoint),
                                    "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "unknown target 'tflite'" in res.output and "Traceback" not in res.output
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
    xml_before = (out / "hoi_head.xml").read_bytes()
    res = CliRunner().invoke(main, ["bake", "--artifact", str(out), "--model", str(tiny_checkpoint), "--vocab", "hico"])
    assert res.exit_code == 0, res.output
    art = HOIDetector.from_artifact(out)
    assert art.vocab.num_classes == 600 and (out / "hoi_head.xml").read_bytes() == xml_before
    assert not _leftovers(out)


def test_detect_with_an_artifact_rejects_vocab(tiny_checkpoint, tmp_path, shared_data):
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "zidane.jpg"),
                                    "--artifact", str(tmp_path), "--vocab", "hico"])
    assert res.exit_code == 1 and "re-bake" in res.output
