"""Training survives SIGKILL while it writes a checkpoint: last.pt stays the previous epoch's, whole; --resume
continues from it; the log holds whole lines of one run; the killed writer's temp file is swept."""

from __future__ import annotations

import json

from click.testing import CliRunner
from killer import run_and_kill

from hoi_edge.weights.checkpoint import read_checkpoint
from train.cli import train_command

FAST = ["--preset", "clip4hoi-tiny", "--batch-size", "2", "--workers", "0", "--max-steps-per-epoch", "1",
        "--device", "cpu"]

CHILD = """
import torch
from killer import kill_point
from train.cli import train_command

# the second checkpoint (epoch 2): written out completely to its temp file, killed before it is renamed
kill_point([(torch, "save")], 2, "after", {marker!r})
train_command.main({args!r})
"""


def test_kill_while_writing_a_checkpoint_then_resume(tmp_path, shared_data):
    data, out, marker = shared_data / "hicodet" / "real_test_images", tmp_path / "run", tmp_path / "marker"
    args = ["--data", str(data), "--epochs", "3", "--out", str(out), *FAST]
    result = run_and_kill(CHILD.format(marker=str(marker), args=args), ready=marker.exists)
    assert result.killed, result.output
    assert read_checkpoint(out / "last.pt")["extra"]["epoch"] == 1            # the previous checkpoint, whole
    assert len(list(out.glob(".last.pt.*"))) == 1                             # what the killed writer left
    log = (out / "train_log.jsonl").read_text()
    assert [json.loads(line)["step"] for line in log.splitlines()] == [1, 2]  # epoch 2 ran, its checkpoint lost

    resumed = CliRunner().invoke(train_command, ["--data", str(data), "--epochs", "3", "--out", str(out),
                                                 "--resume", str(out / "last.pt"), *FAST[2:]])
    assert resumed.exit_code == 0, resumed.output
    assert "trained to epoch 3/3" in resumed.output
    assert read_checkpoint(out / "last.pt")["extra"]["epoch"] == 3
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]                       # the lost step 2 is trained again and logged once
    assert list(out.glob(".last.pt.*")) == []
