"""A short real training run of the tiny model on the hand-labelled photos: loss, checkpoint, inference, resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hoi_edge import HOIDetector
from hoi_edge.core.errors import HOIEdgeError, WeightsError
from hoi_edge.weights.checkpoint import load_model, read_checkpoint
from train.dataset import HICODataset
from train.trainer import LOG_NAME, TrainConfig, Trainer

LABELS = Path(__file__).resolve().parents[2] / "samples" / "labels" / "photos_hoi.json"
EPOCHS = 6          # 6 images, batch 2 -> 3 steps per epoch -> 18 steps


@pytest.fixture(scope="module")
def dataset(shared_data) -> HICODataset:
    return HICODataset(LABELS, shared_data / "photos")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint, dataset):
    model = load_model(tiny_checkpoint)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = tmp_path_factory.mktemp("train_run")
    cfg = TrainConfig(epochs=EPOCHS, lr=1e-3, batch_size=2, lr_drop=None, out_dir=str(out), seed=0,
                      text_grad_checkpointing=False)
    trainer = Trainer(model, dataset, cfg)
    records = trainer.fit()
    return SimpleNamespace(model=model, before=before, records=records, out=out, cfg=cfg, trainer=trainer)


def test_loss_goes_down(trained):
    losses = [r["loss"] for r in trained.records]
    assert len(losses) == 18 and all(np.isfinite(losses))
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < 0.85 * first, (first, last)
    assert all(r["n_pos"] > 0 for r in trained.records)                 # GT instances give every batch positives


def test_log_has_one_record_per_step(trained):
    lines = (trained.out / LOG_NAME).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == list(range(1, 19))
    assert {"epoch", "loss", "loss_pair", "loss_global", "lr", "n_pos"} <= set(rows[0])
    assert rows[-1]["epoch"] == EPOCHS


def test_only_the_trainable_parts_moved(trained):
    after = trained.model.state_dict()
    for key, value in trained.before.items():
        changed = not torch.equal(value, after[key])
        if key.startswith(("detector.", "clip.")):
            assert not changed, key
    moved = {k.split(".")[0] + "." + k.split(".")[1] for k, v in trained.before.items() if not torch.equal(v, after[k])}
    assert {"head.interactor", "head.decoder", "classifier.prompts", "classifier.pair_logit_bias",
            "classifier.global_logit_bias"} <= moved


def test_checkpoint_loads_and_predicts(trained, photos):
    path = trained.out / "last.pt"
    data = read_checkpoint(path)
    assert data["extra"]["epoch"] == EPOCHS and data["extra"]["step"] == 18
    assert data["extra"]["split"] == {"name": "none", "unseen": []}
    assert data["extra"]["train_config"]["lr"] == 1e-3
    loaded = load_model(path)
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value.cpu(), loaded.state_dict()[key]), key
    detector = HOIDetector.from_checkpoint(path)
    dets = detector.predict(next(p for p in photos if p.name == "messi5.jpg"))
    assert dets and all(np.isfinite(d.score) for d in dets)
    with torch.no_grad():
        np.testing.assert_allclose(detector.text_embeddings, trained.model.text_embeddings().numpy(), atol=1e-5)


def test_trained_checkpoint_is_accepted_by_export(trained, tmp_path, photos):
    from click.testing import CliRunner

    from hoi_edge.cli import main

    out = tmp_path / "onnx"
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--model", str(trained.out / "last.pt"),
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    dets = HOIDetector.from_artifact(out).predict(next(p for p in photos if p.name == "messi5.jpg"))
    assert dets and all(np.isfinite(d.score) for d in dets)


def test_resume_continues_epoch_step_and_optimizer(trained, dataset):
    last = trained.out / "last.pt"
    cfg = replace(trained.cfg, epochs=EPOCHS + 1, resume=str(last), max_steps_per_epoch=1)
    trainer = Trainer(load_model(last), dataset, cfg)
    assert (trainer.epoch, trainer.step) == (EPOCHS, 18)
    state = trainer.optimizer.state_dict()["state"]
    saved = read_checkpoint(last)["extra"]["optimizer"]["state"]
    # not vacuous: a state that was never loaded is empty, and all(...) over nothing is True
    assert len(state) == len(saved) > 0 and sorted(state) == sorted(saved)
    assert [int(s["step"]) for s in state.values()] == [18] * len(saved)
    for k, s in saved.items():
        torch.testing.assert_close(state[k]["exp_avg_sq"], s["exp_avg_sq"], rtol=0, atol=0, msg=str(k))
    records = trainer.fit()
    assert [(r["epoch"], r["step"]) for r in records] == [(EPOCHS + 1, 19)]
    assert read_checkpoint(last)["extra"]["epoch"] == EPOCHS + 1
    assert len((trained.out / LOG_NAME).read_text().splitlines()) == 19


def test_resume_refuses_other_splits_and_plain_checkpoints(trained, dataset, tiny_checkpoint):
    cfg = replace(trained.cfg, resume=str(trained.out / "last.pt"))
    with pytest.raises(HOIEdgeError, match="trained with split 'none', not 'rf-uc'"):
        Trainer(load_model(tiny_checkpoint), dataset, cfg, split="rf-uc")
    with pytest.raises(WeightsError, match="not a training checkpoint"):
        Trainer(load_model(tiny_checkpoint), dataset, replace(cfg, resume=str(tiny_checkpoint)))
