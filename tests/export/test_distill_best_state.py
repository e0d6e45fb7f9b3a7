"""Distillation keeps the best state it measured, not the last one.

A small MLP is distilled at a learning rate that first lowers the loss to the FP32 teacher and then
overshoots, so the best state, the state before distillation and the last state all differ; every
loss measurement distillation makes is recorded, and the returned module is measured again here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import compress.distill as distill
from compress.quantize import QuantizationConfig


class _MLP(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_returned_module_is_the_best_state_measured(monkeypatch):
    torch.manual_seed(0)
    teacher = _MLP().eval()
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((1, 16)).astype(np.float32),) for _ in range(8)]
    measured: list[float] = []
    mean_loss = distill.mean_loss

    def record(*args, **kwargs):
        value = mean_loss(*args, **kwargs)
        measured.append(value)
        return value

    monkeypatch.setattr(distill, "mean_loss", record)
    result = distill.quantize_and_distill(teacher, "mlp", samples, QuantizationConfig(),
                                          distill.DistillConfig(steps=20, lr=3e-3, checks=10), progress=False)
    monkeypatch.undo()
    before, last = measured[0], measured[-1]          # after quantization; after the final step
    assert result.loss_before == before and result.loss_after == min(measured)
    # the setting is one where the three differ, so returning the wrong one cannot pass unnoticed
    assert result.loss_after < before and result.loss_after < last, measured
    inputs = [tuple(torch.from_numpy(a) for a in s) for s in samples]
    with torch.no_grad():
        targets = [(teacher(*x),) for x in inputs]
    again = distill.mean_loss(result.module, inputs, targets)
    assert again == pytest.approx(result.loss_after, rel=1e-5, abs=1e-9)
    assert again < last
