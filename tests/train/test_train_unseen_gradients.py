"""Zero-shot training through the real Trainer: unseen classes get no gradient on their logits, seen ones do.

The unseen set mixes a class whose pair is dropped from the data (catch sports ball) with classes of
objects that stay in the data (dribble sports ball, adjust tie, ride bus): the object prior alone would
give those a loss on every sports-ball / tie / bus pair, so only the unseen mask keeps them out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hoi_edge.weights.checkpoint import load_model
from train.dataset import HICODataset
from train.trainer import TrainConfig, Trainer

LABELS = Path(__file__).resolve().parents[2] / "samples" / "labels" / "photos_hoi.json"
UNSEEN = (490, 491, 538, 60)        # catch / dribble sports ball, adjust tie, ride bus
SEEN_IN_DATA = (544, 500, 495, 64)  # wear tie, throw / kick sports ball, no_interaction bus


def test_unseen_logits_get_zero_gradient_and_seen_ones_do_not(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    dataset = HICODataset(LABELS, shared_data / "photos", unseen=UNSEEN)
    assert not {a.filename for a in dataset.annotations} & {"basketball1.png"}     # its pair carries 'catch'
    model = load_model(tiny_checkpoint)
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []
    logits = model.classifier.logits

    def keep_logits(*args, **kwargs):
        pair, glob = logits(*args, **kwargs)
        if pair.requires_grad:
            pair.retain_grad()
            glob.retain_grad()
            captured.append((pair, glob))
        return pair, glob

    monkeypatch.setattr(model.classifier, "logits", keep_logits)
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=len(dataset), lr_drop=None, max_steps_per_epoch=1,
                      out_dir=str(tmp_path), text_grad_checkpointing=False, device="cpu")
    Trainer(model, dataset, cfg, split="custom").fit()

    assert len(captured) == 1
    pair, glob = captured[0]
    assert pair.grad is not None and glob.grad is not None
    seen = np.ones(pair.shape[-1], bool)
    seen[list(UNSEEN)] = False
    unseen = ~seen
    assert torch.count_nonzero(pair.grad[..., unseen]) == 0
    assert torch.count_nonzero(glob.grad[..., unseen]) == 0
    # every seen class gets a gradient from the image-level term; the annotated ones from the pair term too
    assert bool((glob.grad[..., seen] != 0).all())
    for c in SEEN_IN_DATA:
        assert torch.count_nonzero(pair.grad[..., c]) > 0, c
    # the unseen classes of objects in the data had pairs the object prior alone would have trained
    assert all(torch.count_nonzero(pair.grad[..., c]) == 0 for c in UNSEEN)
