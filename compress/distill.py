"""Quantization-aware distillation: NNCF INT8 (fake-quantized PyTorch) units fine-tuned to match the
full-precision teacher's outputs.

Post-training quantization only picks ranges; distillation then lets the
weights and quantizer ranges adapt so each INT8 unit reproduces what the FP32
unit computes (DETR logits/boxes/features, CLIP global embedding and patch
tokens, pair embeddings) on the calibration inputs. This is NNCF's QAT flow:
``nncf.quantize`` on the ``torch.nn.Module``, train it, then hand it to
``openvino.convert_model``, which turns NNCF's fake quantizers into INT8
FakeQuantize operations.

The loss is each output's mean squared error divided by the teacher output's
variance, summed over outputs: scale-free, so the detector's logits and
the CLIP embeddings weigh alike. For the HOI head, given the artifact's baked
text bank (:class:`PairScores`), the pair logits ``scale * pair_embeddings @
text.T`` are one more such output: the student then matches the teacher's
pair scores for the vocabulary it will run with, not only the embeddings.
(The variance normalisation makes that term independent of the scale; the
logits are still formed exactly as the classifier forms them.)
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Sequence

import nncf
import numpy as np
import torch
from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
from tqdm import tqdm

from compress.quantize import QuantizationConfig, UnitSample

Outputs = tuple[torch.Tensor, ...]


@dataclass
class DistillConfig:
    steps: int = 300            # optimiser steps (one calibration sample each; the units have batch 1)
    lr: float = 1e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0
    checks: int = 5             # times the loss over all calibration samples is measured; the best state is kept


@dataclass
class PairScores:
    """hoi_head's pair logits against a text bank: ``logit_scale * pair_embeddings @ text_embeddings.T``."""

    text_embeddings: np.ndarray     # (C, E), L2-normalised: the bank baked into the artifact
    logit_scale: float              # the classifier's pair logit scale (exp of its log-scale parameter)

    def __post_init__(self) -> None:
        self._text = torch.from_numpy(np.array(self.text_embeddings, dtype=np.float32, order="C"))

    def logits(self, pair_embeddings: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * pair_embeddings @ self._text.T

    def describe(self) -> dict[str, Any]:
        return {"pair_logits": {"classes": int(self._text.shape[0]), "logit_scale": float(self.logit_scale)}}


@dataclass
class DistillResult:
    module: torch.nn.Module
    loss_before: float          # normalised MSE to the teacher right after post-training quantization
    loss_after: float           # ... and of the best state seen while distilling (never worse than before)
    loss_terms: tuple[str, ...] = ("outputs",)

    def describe(self, cfg: DistillConfig) -> dict[str, Any]:
        return {"method": "nncf.quantize (torch) + distillation", "steps": cfg.steps, "lr": cfg.lr,
                "loss": "sum over terms of MSE / Var(teacher)", "loss_terms": list(self.loss_terms),
                "loss_before": self.loss_before, "loss_after": self.loss_after}


def _as_outputs(out: Any) -> Outputs:
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def _to_tensors(sample: UnitSample) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.array(a, dtype=np.float32, order="C")) for a in sample)


def distill_loss(student: Outputs, teacher: Outputs) -> torch.Tensor:
    """Sum over outputs of MSE / Var(teacher): every output counts the same whatever its scale."""
    return sum(torch.nn.functional.mse_loss(s, t) / (t.var() + 1e-8) for s, t in zip(student, teacher, strict=True))


def forward_outputs(module: torch.nn.Module, x: tuple[torch.Tensor, ...], pair: PairScores | None = None) -> Outputs:
    """The unit's outputs, plus its pair logits when ``pair`` is given (first output = pair embeddings)."""
    out = _as_outputs(module(*x))
    return out + (pair.logits(out[0]),) if pair is not None else out


def mean_loss(module: torch.nn.Module, inputs: Sequence[tuple[torch.Tensor, ...]],
              targets: Sequence[Outputs], pair: PairScores | None = None) -> float:
    with torch.no_grad():
        return float(np.mean([float(distill_loss(forward_outputs(module, x, pair), y))
                              for x, y in zip(inputs, targets)]))


def quantize_torch(module: torch.nn.Module, unit: str, inputs: Sequence[tuple[torch.Tensor, ...]],
                   qcfg: QuantizationConfig) -> torch.nn.Module:
    """NNCF INT8 fake-quantized copy of ``module``, trainable.

    SmoothQuant and bias correction are off: they rewrite weights by graph surgery that DETR's
    frozen batch norms defeat in NNCF's torch backend, and the training that follows makes up for them.
    """
    advanced = AdvancedQuantizationParameters(smooth_quant_alpha=-1, disable_bias_correction=True)
    return nncf.quantize(copy.deepcopy(module).eval(), nncf.Dataset(list(inputs), lambda x: x),
                         subset_size=min(qcfg.subset_size, len(inputs)), model_type=nncf.ModelType.TRANSFORMER,
                         ignored_scope=qcfg.ignored_scope(unit), advanced_parameters=advanced)


def quantize_and_distill(module: torch.nn.Module, unit: str, samples: Sequence[UnitSample],
                         qcfg: QuantizationConfig, cfg: DistillConfig, progress: bool = True,
                         pair_scores: PairScores | None = None) -> DistillResult:
    """INT8 student of ``module`` after ``cfg.steps`` steps of distillation from the FP32 ``module``.

    ``pair_scores`` (hoi_head only) adds the pair-logit term against the artifact's text bank.
    """
    pair = pair_scores if unit == "hoi_head" else None
    inputs = [_to_tensors(s) for s in samples]
    teacher = module.eval()
    with torch.no_grad():
        targets = [tuple(t.detach() for t in forward_outputs(teacher, x, pair)) for x in inputs]
    student = quantize_torch(module, unit, inputs, qcfg)
    student.eval()
    before = best = mean_loss(student, inputs, targets, pair)
    best_state = copy.deepcopy(student.state_dict())
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = random.Random(cfg.seed)
    check_every = max(1, cfg.steps // max(1, cfg.checks))
    student.train()
    for step in tqdm(range(1, cfg.steps + 1), desc=f"distill {unit}", disable=not progress):
        i = order.randrange(len(inputs))
        loss = distill_loss(forward_outputs(student, inputs[i], pair), targets[i])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in params:          # a quantizer whose input range collapses (constant input) has no useful gradient
            if p.grad is not None:
                p.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        if step % check_every == 0 or step == cfg.steps:
            student.eval()
            loss_now = mean_loss(student, inputs, targets, pair)
            if loss_now < best:
                best, best_state = loss_now, copy.deepcopy(student.state_dict())
            student.train()
    student.load_state_dict(best_state)
    student.eval()
    terms = ("outputs", "pair_logits") if pair is not None else ("outputs",)
    return DistillResult(module=student, loss_before=before, loss_after=best, loss_terms=terms)
