"""``hoi-edge validate`` / ``benchmark`` end to end on the tiny model: every backend in its own process.

Accuracy with GT uses a GT file built from the reference's *own* top predictions on the 2 real
HICO-DET images (fixture ``self_gt``): the tiny random model scores 0 mAP on the real labels, which
would make every drop trivially 0. On the self-built GT the reference scores 100 mAP, an FP32
export of the same checkpoint ~100 (drop ~0), and an artifact with noise added to its HOI-head
weights clearly less — so the threshold and the exit code are tested on a real difference.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from validate_test_helpers import THREADS

from hoi_edge.validate.cli import THRESHOLD_EXIT_CODE, benchmark_command, validate_command

# the reference as the self-built GT was made (see conftest.self_gt): same device and thread count
SAME_AS_GT = ["--reference-device", "cpu", "--threads", str(THREADS)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, tiny_checkpoint, val_artifacts, self_gt, hico_dir):
    """Reference + OpenVINO FP32 + ONNX FP32 + damaged OpenVINO on the self-built GT, zero-shot split on."""
    out = tmp_path_factory.mktemp("validation")
    res = CliRunner().invoke(validate_command, [
        "--artifacts", str(val_artifacts["openvino"]), str(val_artifacts["onnx"]), str(val_artifacts["damaged"]),
        "--reference", str(tiny_checkpoint), "--data", str(self_gt), "--images", str(hico_dir),
        "--split", "rf-uc", "--out", str(out), "--warmup", "1", *SAME_AS_GT, "--quiet"])
    return res, out, json.loads((out / "report.json").read_text())


def _by_label(report):
    return {a["path"]: a for a in report["artifacts"]}


def test_identical_artifacts_have_no_drop_and_full_agreement(full_run, val_artifacts):
    _, _, report = full_run
    assert report["reference"]["accuracy"]["full"] == pytest.approx(100.0)
    arts = _by_label(report)
    for key in ("openvino", "onnx"):
        a = arts[str(val_artifacts[key])]
        assert abs(a["map_drop"]["full"]) < 0.05, a["map_drop"]
        assert a["agreement"]["topk_overlap"] >= 0.95 and a["agreement"]["box_iou"] > 0.99
        assert a["agreement"]["score_mae"] < 1e-3 and a["passed"]


def test_damaged_artifact_is_flagged_and_exit_code_is_non_zero(full_run, val_artifacts):
    res, _, report = full_run
    damaged = _by_label(report)[str(val_artifacts["damaged"])]
    assert damaged["map_drop"]["full"] > 1.0 and not damaged["passed"]
    assert damaged["agreement"]["topk_overlap"] < 0.8
    # one failure per gated column (Full, Rare where defined, Unseen, Seen: --split is on) that dropped > 1 point
    gated = [m for m in ("full", "rare", "unseen", "seen") if damaged["accuracy"][m] is not None]
    assert {"full", "unseen", "seen"} <= set(gated)
    over = [m for m in gated if damaged["map_drop"][m] > 1.0]
    assert report["passed"] is False and len(report["failures"]) == len(over) >= 1, report["failures"]
    assert all(f.startswith(damaged["label"]) for f in report["failures"])
    assert res.exit_code == THRESHOLD_EXIT_CODE, res.output
    assert "validation failed" in res.output and "openvino-damaged" in res.output and "Traceback" not in res.output


def test_report_outputs(full_run):
    res, out, report = full_run
    assert {"format", "passed", "failures", "dataset", "settings", "thresholds", "environment", "reference",
            "artifacts"} <= set(report)
    assert report["dataset"]["has_groundtruth"] and report["dataset"]["num_images"] == 2
    assert report["settings"]["split"] == "rf_uc" and report["settings"]["threads"] == 2
    ref = report["reference"]
    assert ref["label"] == "pytorch/fp32" and ref["memory"]["peak_rss_mb"] > ref["memory"]["baseline_rss_mb"] > 0
    assert set(ref["latency"]["stages"]) == {"preprocess", "detector", "clip_image", "hoi_head", "postprocess"}
    assert ref["size_bytes"] > 0 and ref["accuracy"]["split"] == "rf_uc"
    # 2 images, default --runs 20: 10 timed passes, so p90 is taken over 20 samples; accuracy over one pass
    assert report["settings"]["passes"] == 10 and report["settings"]["timed_runs"] == 20
    assert all(b["latency"]["runs"] == 20 for b in [ref, *report["artifacts"]])
    assert report["settings"]["reference_device"] == report["settings"]["artifact_device"] == "cpu"
    assert not any("not like for like" in w for w in report["warnings"])
    md = (out / "report.md").read_text()
    assert "1 warm-up + 20 timed runs per backend (10 passes over the images)" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and "(ms)" not in line]
    assert sum("pytorch/fp32 (reference)" in r for r in rows) == 1
    assert sum(r.startswith("| openvino/fp32") for r in rows) >= 4          # main table + stage table
    assert "Unseen" in md and "**FAIL**" in md and md in res.output
    assert (out / "accuracy_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "predictions").glob("*.jsonl"))) == 4


def test_threshold_exit_code_both_ways(tiny_checkpoint, val_artifacts, self_gt, hico_dir):
    """The damaged artifact drops well over 1 mAP point (see above): a loose limit passes, a tight one fails."""
    args = ["--artifacts", str(val_artifacts["damaged"]), "--reference", str(tiny_checkpoint), "--data",
            str(self_gt), "--images", str(hico_dir), "--warmup", "0", "--runs", "1", *SAME_AS_GT, "--quiet"]
    res = CliRunner().invoke(validate_command, args + ["--max-map-drop", "100"])
    assert res.exit_code == 0, res.output
    assert "validation passed" in res.output
    res = CliRunner().invoke(validate_command, args + ["--max-map-drop", "0.5"])
    assert res.exit_code == THRESHOLD_EXIT_CODE, res.output
    assert "validation failed" in res.output and "> 0.50 points" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("key", ["openvino", "onnx"])
def test_artifact_workers_do_not_load_torch(key, val_artifacts, hico_dir):
    """An isolated OpenVINO / ONNX Runtime worker must not carry libtorch, or its Peak RSS would."""
    from hoi_edge.validate.worker import _child_env

    script = ("import json, sys\nfrom pathlib import Path\n"
              "from hoi_edge.validate.backends import artifact_spec\n"
              "from hoi_edge.validate.measure import RunSettings, measure_here\n"
              "run = measure_here(artifact_spec(sys.argv[1]), [Path(sys.argv[2])],\n"
              "                   RunSettings(warmup=0, threads=1, progress=False), measure_memory=True)\n"
              "print(json.dumps({'torch': 'torch' in sys.modules, 'memory': run.memory.to_dict()}))\n")
    image = sorted(hico_dir.glob("*.jpg"))[0]
    proc = subprocess.run([sys.executable, "-c", script, str(val_artifacts[key]), str(image)], env=_child_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    assert result["memory"]["peak_rss_mb"] > result["memory"]["baseline_rss_mb"] > 0


def test_agreement_only_without_groundtruth(tmp_path, tiny_checkpoint, val_artifacts, shared_data):
    res = CliRunner().invoke(validate_command, [
        str(val_artifacts["openvino"]), str(val_artifacts["damaged"]), "--reference", str(tiny_checkpoint),
        "--data", str(shared_data / "photos"), "--limit", "3", "--min-agreement", "0.9", "--warmup", "0",
        "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == THRESHOLD_EXIT_CODE, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert not report["dataset"]["has_groundtruth"] and report["reference"]["accuracy"] is None
    good, bad = report["artifacts"]
    assert good["map_drop"] is None and good["agreement"]["topk_overlap"] >= 0.95 and good["passed"]
    assert bad["agreement"]["topk_overlap"] < 0.9 and "agreement" in bad["failures"][0]
    assert any("no ground truth" in w for w in report["warnings"])
    assert "mAP Full" not in (tmp_path / "report.md").read_text()


def test_benchmark_prints_ratios(tmp_path, tiny_checkpoint, val_artifacts, shared_data):
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(benchmark_command, [
        "--reference", str(tiny_checkpoint), "--artifacts", str(val_artifacts["openvino"]), "--images",
        str(shared_data / "photos"), "--warmup", "1", "--runs", "3", "--threads", "1", "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "openvino/fp32: " in res.output and "than pytorch/fp32" in res.output
    assert "| pytorch/fp32 |" in res.output and "1 threads each" in res.output
    data = json.loads(out.read_text())
    assert data["baseline"] == "pytorch/fp32" and [b["label"] for b in data["backends"]] == ["pytorch/fp32",
                                                                                         "openvino/fp32"]
    assert data["backends"][1]["latency"]["runs"] == 3 and data["settings"]["threads"] == 1
    assert data["noise"]["interleaved"] is True and set(data["noise"]["spread"]) == {"pytorch/fp32", "openvino/fp32"}
    assert "interleaved run by run" in res.output


def test_user_errors_are_one_line(tmp_path, tiny_checkpoint, val_artifacts, hico_dir):
    base = ["--data", str(hico_dir / "annotations.json"), "--quiet"]
    res = CliRunner().invoke(validate_command, base + ["--reference", str(tiny_checkpoint)])
    assert res.exit_code == 1 and "nothing to validate" in res.output
    res = CliRunner().invoke(validate_command, base + ["--reference", str(tmp_path / "none.pt"), "--artifacts",
                                                       str(val_artifacts["onnx"])])
    assert res.exit_code == 1 and "checkpoint not found" in res.output and "none.pt" in res.output
    res = CliRunner().invoke(validate_command, base + ["--reference", str(tiny_checkpoint), str(tmp_path)])
    assert res.exit_code == 1 and "manifest.json is missing" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(benchmark_command, ["--images", str(hico_dir), "--no-reference"])
    assert res.exit_code == 1 and "nothing to benchmark" in res.output


def _copy_artifact(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_artifact_from_another_checkpoint_fails_unless_allowed(tmp_path, tiny_checkpoint, val_artifacts, hico_dir):
    """bake refuses a checkpoint an artifact was not exported from; validate does too (before any run)."""
    other = _copy_artifact(val_artifacts["onnx"], tmp_path / "onnx-other")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["source_checkpoint"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    args = [str(other), "--model", str(tiny_checkpoint), "--data", str(hico_dir / "annotations.json"), "--limit",
            "1", "--warmup", "0", "--runs", "1", "--reference-device", "cpu", "--quiet"]
    res = CliRunner().invoke(validate_command, args)
    assert res.exit_code == 1 and "another checkpoint" in res.output and "--allow-checkpoint-mismatch" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(validate_command, args + ["--allow-checkpoint-mismatch"])
    assert res.exit_code == 0, res.output
    assert "another checkpoint" in res.output          # still said, as a warning


def test_one_corrupt_artifact_among_several_is_reported_and_the_others_measured(
        tmp_path, tiny_checkpoint, val_artifacts, hico_dir):
    corrupt = _copy_artifact(val_artifacts["openvino"], tmp_path / "openvino-corrupt")
    blob = bytearray((corrupt / "detector.bin").read_bytes())
    blob[100:108] = b"\xff" * 8                      # a flipped block, as a bad copy would leave
    (corrupt / "detector.bin").write_bytes(bytes(blob))
    out = tmp_path / "val"
    res = CliRunner().invoke(validate_command, [
        str(corrupt), str(val_artifacts["onnx"]), "--model", str(tiny_checkpoint), "--data",
        str(hico_dir / "annotations.json"), "--limit", "1", "--warmup", "0", "--runs", "1", "--reference-device", "cpu",
        "--out", str(out), "--quiet"])
    assert res.exit_code == THRESHOLD_EXIT_CODE, res.output
    report = json.loads((out / "report.json").read_text())
    broken, good = report["artifacts"]
    assert "detector.bin does not match the manifest" in broken["error"] and not broken["passed"]
    assert good["error"] is None and good["latency"]["runs"] == 1 and good["passed"]
    assert "**BROKEN**" in (out / "report.md").read_text() and "Traceback" not in res.output


def test_reference_that_finds_nothing_cannot_pass(tmp_path, tiny_checkpoint, val_artifacts, shared_data,
                                                  monkeypatch):
    """Every image without a triplet (as with a random-init model): agreement n/a, run FAILED, unless allowed."""
    import hoi_edge.pipeline.detector
    from hoi_edge.validate import Thresholds, ValidateConfig, validate

    monkeypatch.setattr(hoi_edge.pipeline.detector, "top_detections", lambda *a, **k: [])
    cfg = dict(reference=tiny_checkpoint, artifacts=[val_artifacts["onnx"]], data=shared_data / "photos", limit=2,
               warmup=0, runs=1, device="cpu", progress=False, isolate=False, out=tmp_path / "val")
    report = validate(ValidateConfig(**cfg))
    assert not report.passed and "found no HOI triplet on any of the 2 images" in report.failures[0]
    assert report.artifacts[0].agreement.topk_overlap is None
    md = report.to_markdown()
    assert "FAILED" in md and "| n/a |" in md
    preds = (tmp_path / "val" / "predictions" / "pytorch-fp32.jsonl").read_text().splitlines()
    assert len(preds) == 2 and all(json.loads(line)["detections"] == [] for line in preds)   # a line per image
    allowed = validate(ValidateConfig(**{**cfg, "out": None},
                                      thresholds=Thresholds(allow_empty_reference=True)))
    assert allowed.passed and any("--allow-empty-reference" in w for w in allowed.warnings)
