"""``hoi-edge train`` end to end through click (tiny preset, one or two steps per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hoi_edge.weights.checkpoint import read_checkpoint
from train.cli import train_command

LABELS = Path(__file__).resolve().parents[2] / "samples" / "labels" / "photos_hoi.json"
FAST = ["--preset", "clip4hoi-tiny", "--batch-size", "2", "--workers", "0", "--max-steps-per-epoch", "1"]


def invoke(*args: str):
    return CliRunner().invoke(train_command, [str(a) for a in args], catch_exceptions=False)


def test_train_then_resume(tmp_path, shared_data):
    data = shared_data / "hicodet" / "real_test_images"
    out = tmp_path / "run"
    first = invoke("--data", data, "--split", "rf-uc", "--epochs", "1", "--out", out, *FAST)
    assert first.exit_code == 0, first.output
    assert "2 training images" in first.output and "split rf-uc: 120 unseen classes" in first.output
    extra = read_checkpoint(out / "last.pt")["extra"]
    assert extra["epoch"] == 1 and extra["split"]["name"] == "rf-uc" and len(extra["split"]["unseen"]) == 120

    resumed = invoke("--data", data, "--split", "rf-uc", "--epochs", "2", "--out", out, "--resume", out / "last.pt",
                     *FAST[2:])
    assert resumed.exit_code == 0, resumed.output
    assert "trained to epoch 2/2 (2 steps" in resumed.output
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]

    done = invoke("--data", data, "--split", "rf-uc", "--epochs", "2", "--out", out, "--resume", out / "last.pt")
    assert done.exit_code == 0 and "nothing to do" in done.output


def test_annotations_and_images_options(tmp_path, shared_data):
    out = tmp_path / "labels_run"
    result = invoke("--annotations", LABELS, "--images", shared_data / "photos", "--epochs", "1", "--out", out,
                    "--split", "nf-uc", *FAST)
    assert result.exit_code == 0, result.output
    assert "2 training images" in result.output and "5 images dropped" in result.output
    assert read_checkpoint(out / "last.pt")["includes_frozen"] is True


def test_slim_needs_reloadable_frozen_weights(tmp_path, shared_data):
    result = CliRunner().invoke(train_command, ["--annotations", LABELS, "--images", shared_data / "photos",
                                                "--out", tmp_path, "--slim", *FAST])
    assert result.exit_code == 1 and "--slim" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    ([], "no training data"),
    (["--data", "/nonexistent/folder"], "data folder not found: /nonexistent/folder"),
    (["--annotations", "/nonexistent/a.json", "--images", "."], "annotation file not found: /nonexistent/a.json"),
    (["--data", ".", "--annotations", "x.json"], "not both"),
    (["--preset", "clip4hoi-tiny", "--init", "x.pt", "--annotations", str(LABELS), "--images", "."],
     "--preset and --model"),
    (["--init", "/nonexistent/x.pt", "--annotations", str(LABELS), "--images", "."], "checkpoint not found"),
])
def test_errors_are_one_line(args, message):
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(tmp_path, shared_data):
    result = CliRunner().invoke(train_command, ["--annotations", LABELS, "--images", shared_data / "photos",
                                                "--out", tmp_path, "--device", "cuda", *FAST])
    assert result.exit_code == 1 and "PyTorch finds no CUDA GPU" in result.output, result.output
