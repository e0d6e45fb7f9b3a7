"""DDP through the documented entry point: ``torchrun --nproc_per_node 2 -m train`` (gloo, CPU) against one process.

One optimizer step of 2 ranks x batch 1 x ``--accumulate 2`` must give what one process x batch 4 gives
(same samples: the DistributedSampler of 2 ranks splits the permutation of one): the same loss (normalised
over the global batch), the same gradients (AdamW's first moment in last.pt is 0.1 x the clipped gradient)
and the same parameters. A 2-rank run stopped after epoch 1 and resumed from its last.pt must continue as
the uninterrupted single process does. Parameters are compared to 1e-4 (a tenth of one step at lr 1e-3):
AdamW's first step is lr * g / (|g| + eps), which turns float noise in near-zero gradients into up to a
whole step, so a few elements of 4096 differ by ~1e-5; gradients are compared tightly instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hoi_edge.weights.checkpoint import load_model, read_checkpoint
from train.dataset import HICODataset
from train.trainer import LOG_NAME, TrainConfig, Trainer

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "samples" / "labels" / "photos_hoi.json"
TRAINED = ("head.", "classifier.")
LR = 1e-3

pytestmark = pytest.mark.slow


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def _trained(state) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items() if k.startswith(TRAINED)}


def _close(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys() and got
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-4, msg=key)


def _first_moments(optimizer_state: dict) -> list[torch.Tensor]:
    return [optimizer_state["state"][i]["exp_avg"] for i in sorted(optimizer_state["state"])]


def test_two_ranks_equal_one_process_and_resume_continues_identically(tiny_checkpoint, shared_data, tmp_path):
    photos = shared_data / "photos"
    common = ["--annotations", str(LABELS), "--images-dir", str(photos), "--device", "cpu", "--lr", str(LR),
              "--lr-drop", "100", "--batch-size", "1", "--accumulate", "2", "--max-steps-per-epoch", "1",
              "--workers", "0", "--seed", "0", "--out", str(tmp_path / "ddp")]
    first = _torchrun(*common, "--model", str(tiny_checkpoint), "--epochs", "1")
    assert "on 2 processes" in first.stdout and first.stdout.count("trained to epoch 1/1") == 1   # rank 0 prints
    ckpt_1 = read_checkpoint(tmp_path / "ddp" / "last.pt")
    after_1, moments_1 = _trained(ckpt_1["state_dict"]), _first_moments(ckpt_1["extra"]["optimizer"])
    _torchrun(*common, "--resume", str(tmp_path / "ddp" / "last.pt"), "--epochs", "2")
    ckpt = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert (ckpt["extra"]["epoch"], ckpt["extra"]["step"], ckpt["extra"]["world_size"]) == (2, 2, 2)
    log = [json.loads(line) for line in (tmp_path / "ddp" / LOG_NAME).read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2]                                          # rank 0 alone logs

    # one process, batch 4 (= 2 ranks x 1 x accumulate 2), uninterrupted for 2 epochs
    model = load_model(tiny_checkpoint)
    before = _trained(model.state_dict())
    cfg = TrainConfig(epochs=1, lr=LR, lr_drop=100, batch_size=4, max_steps_per_epoch=1, device="cpu",
                      out_dir=str(tmp_path / "single"))
    trainer = Trainer(model, HICODataset(LABELS, photos, hflip=True, seed=0), cfg)
    records = trainer.fit()
    single_1 = _trained(model.state_dict())
    assert any(not torch.equal(single_1[k], before[k]) for k in before)                # the step moved something
    _close(after_1, single_1)
    single_moments = _first_moments(trainer.optimizer.state_dict())
    assert len(moments_1) == len(single_moments) == len(trainer.params)
    scale = max(float(m.abs().max()) for m in single_moments)      # (k biases get ~1e-13: softmax ignores them)
    for got, want in zip(moments_1, single_moments):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)
    trainer.cfg.epochs = 2
    records += trainer.fit()
    _close(_trained(ckpt["state_dict"]), _trained(model.state_dict()))
    assert len(records) == 2
    for got, want in zip(log, records):                        # the logged loss is the global batch's loss
        assert got["n_pos"] == want["n_pos"]
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)
    assert list(iter(trainer.loader(0).sampler)) != list(iter(trainer.loader(1).sampler))  # reshuffled per epoch
