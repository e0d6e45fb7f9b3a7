"""Artifacts you can trust (issue 14): plain unit file names, a sha256 of every file checked on load and by
``hoi-edge verify``, the random-init fact carried from the checkpoint to the artifact, and a CLI that says what
is wrong in one line (conflicting options, near-miss choices, deprecated names, unsafe advice)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from hoi_edge.cli import main
from hoi_edge.core.errors import ArtifactError, WeightsError
from hoi_edge.runtime.artifact import load_artifact
from hoi_edge.runtime.manifest import Manifest


@pytest.fixture()
def onnx_copy(artifact_factory, tmp_path):
    return shutil.copytree(artifact_factory("onnx", "fp32"), tmp_path / "onnx-fp32")


def _edit_manifest(folder, edit):
    data = json.loads((folder / "manifest.json").read_text())
    edit(data)
    (folder / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("bad", ["../outside/detector.onnx", "/etc/passwd", "sub/detector.onnx", ".."])
def test_unit_files_must_be_plain_names_inside_the_folder(onnx_copy, bad):
    _edit_manifest(onnx_copy, lambda d: d["units"]["detector"].update(file=bad))
    with pytest.raises(ArtifactError, match="must be a plain file name inside the artifact folder"):
        Manifest.read(onnx_copy)


def test_every_file_is_hashed_and_a_changed_one_is_named(onnx_copy):
    manifest = Manifest.read(onnx_copy)
    assert set(manifest.files) == {p.name for p in onnx_copy.iterdir() if p.name != "manifest.json"}
    res = CliRunner().invoke(main, ["verify", str(onnx_copy)])
    assert res.exit_code == 0 and f"{len(manifest.files)} files match" in res.output
    blob = bytearray((onnx_copy / "hoi_head.onnx").read_bytes())
    mid = len(blob) // 2                         # inside a weight tensor's raw data: the file still parses
    blob[mid:mid + 8] = bytes(8)
    (onnx_copy / "hoi_head.onnx").write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match=r"hoi_head\.onnx does not match the manifest \(sha256 differs\)"):
        load_artifact(onnx_copy)
    res = CliRunner().invoke(main, ["verify", str(onnx_copy)])
    assert res.exit_code == 1 and "hoi_head.onnx does not match" in res.output and "Traceback" not in res.output
    load_artifact(onnx_copy, verify=False)       # without the check the damage goes unnoticed: it still loads


def test_rebake_keeps_the_file_hashes_true(onnx_copy, tiny_checkpoint, tmp_path):
    from compress.bake import rebake_artifact

    vocab = tmp_path / "kitchen.json"
    vocab.write_text(json.dumps({"name": "kitchen", "verbs": ["hold"], "objects": ["cup", "person"],
                                 "hois": [["hold", "cup"], ["hold", "person"]]}))
    rebake_artifact(onnx_copy, tiny_checkpoint, vocab)
    Manifest.read(onnx_copy).verify_files(onnx_copy)
    assert load_artifact(onnx_copy).vocab.name == "kitchen"


def test_random_init_is_recorded_and_loading_warns(artifact_factory, capsys, monkeypatch):
    from hoi_edge.core import provenance

    folder = artifact_factory("onnx", "fp32")
    assert Manifest.read(folder).random_init == ["detector", "clip"]     # the tiny test model is random
    monkeypatch.setattr(provenance, "_warned", False)
    monkeypatch.delenv(provenance.WARNED_ENV, raising=False)
    load_artifact(folder)
    err = capsys.readouterr().err
    assert "WARNING" in err and "random-init weights (detector, clip)" in err and "not meaningful" in err


def test_corrupt_checkpoint_error_gives_no_unsafe_advice(tmp_path):
    import datetime

    import torch

    from hoi_edge.weights.checkpoint import read_checkpoint

    truncated = tmp_path / "truncated.pt"
    torch.save({"a": torch.zeros(3)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(WeightsError) as err:
        read_checkpoint(truncated)
    assert "truncated.pt is corrupt" in str(err.value) and "weights_only" not in str(err.value)
    pickled = tmp_path / "objects.pt"
    torch.save({"when": datetime.datetime(2020, 1, 1)}, pickled)
    with pytest.raises(WeightsError) as err:
        read_checkpoint(pickled)
    assert "datetime.datetime" in str(err.value) and "weights_only" not in str(err.value)
    assert "trust" not in str(err.value)


def test_cli_rejects_conflicts_and_suggests_near_choices(tmp_path, tiny_checkpoint):
    out = str(tmp_path / "a")
    res = CliRunner().invoke(main, ["export", "--target", "openvio", "--out", out])
    assert res.exit_code == 2 and "did you mean 'openvino'?" in res.output
    res = CliRunner().invoke(main, ["export", "--target", "OpenVINO", "--precision", "fp16", "--int8", "--out", out])
    assert res.exit_code == 2 and "--int8" in res.output and "--precision fp16" in res.output
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--precision", "fp61", "--out", out])
    assert res.exit_code == 2 and "did you mean 'fp16'?" in res.output


def test_deprecated_option_names_still_work_with_a_warning(tmp_path):
    from hoi_edge.validate.cli import benchmark_command

    res = CliRunner().invoke(benchmark_command, ["--images", str(tmp_path), "--no-reference"])   # stdout + stderr
    assert res.exit_code == 1 and "nothing to benchmark" in res.output     # --images reached --data
    assert "--images is deprecated here, use --data" in res.output
    res = CliRunner().invoke(benchmark_command, ["--images", str(tmp_path), "--data", str(tmp_path)])
    assert res.exit_code == 2 and "give only --data" in res.output


def test_calibration_says_how_many_images_it_found(shared_data, capsys):
    from compress.calibration import CalibrationConfig, list_images

    paths = list_images(CalibrationConfig(shared_data / "photos", max_images=300))
    err = capsys.readouterr().err
    assert f"holds {len(paths)} images, fewer than the 300 asked for" in err


def test_default_means_the_same_model_everywhere(onnx_copy, tiny_checkpoint, monkeypatch):
    """'default' (or no --model) is one model in bake, validate and the Python API, as in detect and export."""
    from hoi_edge import HOIDetector
    from hoi_edge.weights.defaults import resolve_checkpoint

    monkeypatch.setenv("HOI_EDGE_MODEL", str(tiny_checkpoint))
    assert resolve_checkpoint("default") == tiny_checkpoint
    det = HOIDetector.from_checkpoint("default")
    assert det.vocab.fingerprint() == Manifest.read(onnx_copy).vocabulary_fingerprint
    res = CliRunner().invoke(main, ["bake", "--artifact", str(onnx_copy), "--vocab", "hico"])     # --model default
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["bake", "--artifact", str(onnx_copy), "--model", "nope.pt", "--vocab", "hico"])
    assert res.exit_code == 1 and "checkpoint not found: nope.pt" in res.output


def test_writing_commands_check_their_output_before_working(tmp_path, tiny_checkpoint, shared_data):
    """export and train on an output location that cannot be written: one line, before any model is built."""
    from train.cli import train_command

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--model", str(tiny_checkpoint), "--out",
                                    str(blocker / "artifact")])
    assert res.exit_code == 1 and "cannot write --out" in res.output and "Traceback" not in res.output
    labels = Path(__file__).resolve().parents[2] / "samples" / "labels" / "photos_hoi.json"
    res = CliRunner().invoke(train_command, ["--annotations", str(labels), "--images-dir", str(shared_data / "photos"),
                                             "--preset", "clip4hoi-tiny", "--out", str(blocker / "run")])
    assert res.exit_code == 1 and "cannot write --out folder" in res.output and "Traceback" not in res.output
