"""Quantization-aware distillation: INT8 (fake-quantized PyTorch) units fine-tuned to match the
full-precision teacher's outputs, on every target.

Post-training quantization only picks ranges; distillation then lets the weights (and NNCF's quantizer
ranges) adapt so each INT8 unit reproduces what the FP32 unit computes (detector scores/boxes/features, CLIP
global embedding and patch tokens, pair embeddings) on the calibration inputs. The student depends on the
target, the training loop (:func:`distill_student`) does not:

- OpenVINO: NNCF's QAT flow, ``nncf.quantize`` on the ``torch.nn.Module`` (:func:`quantize_torch`), trained,
  then converted by ``openvino.convert_model`` (:func:`convert_distilled`), whose FakeQuantize operations
  the CPU plugin runs as INT8;
- ONNX Runtime: the same NNCF student, ``nncf.strip`` to PyTorch's native fake quantizers, then a QDQ ONNX
  export (:func:`export_distilled_onnx`);
- ExecuTorch: PT2E QAT, ``prepare_qat_pt2e`` with the XNNPACK quantizer, trained, ``convert_pt2e`` and
  lowered (:mod:`compress.pt2e`).

Every converted unit is run next to its student on calibration inputs, and must reproduce it (every
output's cosine >= :data:`compress.equality.MATCH_COSINE`, on this CPU; the manifest records the value and
the ISA); a unit that does not is discarded loudly and gets post-training INT8.

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
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import nncf
import numpy as np
import torch
from tqdm import tqdm

from compress.equality import MATCH_COSINE, Equality, sample_tensors
from compress.quantize import QuantizationConfig, UnitSample
from hoi_edge.model.classifier import clip_logits

Outputs = tuple[torch.Tensor, ...]

# NNCF's torch quantizers are a C++ extension compiled on first use (about a minute on 2 busy cores); NNCF gives
# up after 60 s by default and distillation would then fail on a fresh machine. A user's own setting wins.
os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "900")


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
    """hoi_head's pair logits against a text bank: the classifier's :func:`clip_logits` without its bias
    (a constant shift, which neither the MSE nor the teacher's variance sees)."""

    text_embeddings: np.ndarray     # (C, E), L2-normalised: the bank baked into the artifact
    logit_scale: float              # the classifier's pair logit scale (exp of its log-scale parameter)

    def __post_init__(self) -> None:
        self._text = torch.from_numpy(np.array(self.text_embeddings, dtype=np.float32, order="C"))

    def logits(self, pair_embeddings: torch.Tensor) -> torch.Tensor:
        return clip_logits(pair_embeddings, self._text, self.logit_scale)

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
    """NNCF INT8 fake-quantized copy of ``module`` (the export recipe's model type, preset, OverflowFix and
    sensitive layers), trainable: its weights and its quantizers' ranges.

    SmoothQuant and bias correction are off: they rewrite weights by graph surgery that DETR's
    frozen batch norms defeat in NNCF's torch backend, and the training that follows makes up for them.
    """
    advanced = qcfg.advanced(smooth_quant_alpha=-1, disable_bias_correction=True)
    student = nncf.quantize(copy.deepcopy(module).eval(), nncf.Dataset(list(inputs), lambda x: x),
                            subset_size=min(qcfg.subset_size, len(inputs)), preset=nncf.QuantizationPreset.MIXED,
                            model_type=qcfg.model_type(unit), ignored_scope=qcfg.torch_ignored_scope(unit),
                            advanced_parameters=advanced)
    for p in student.parameters():       # the teacher may be frozen (detector, CLIP); its student's copy is not
        if p.is_floating_point():
            p.requires_grad_(True)
    return student


def estimate_text(seconds: float) -> str:
    """'45 s', '12 min', '2.1 h': the scale a person plans with."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def quantize_and_distill(module: torch.nn.Module, unit: str, samples: Sequence[UnitSample],
                         qcfg: QuantizationConfig, cfg: DistillConfig, progress: bool = True,
                         pair_scores: PairScores | None = None) -> DistillResult:
    """NNCF INT8 student of ``module`` after ``cfg.steps`` steps of distillation from the FP32 ``module``.

    ``pair_scores`` (hoi_head only) adds the pair-logit term against the artifact's text bank.
    """
    inputs = [sample_tensors(s) for s in samples]
    return distill_student(quantize_torch(module, unit, inputs, qcfg), module, unit, samples, cfg, progress,
                           pair_scores)


def _train_mode(module: torch.nn.Module, train: bool) -> None:
    module.train(train)


def distill_student(student: torch.nn.Module, teacher: torch.nn.Module, unit: str, samples: Sequence[UnitSample],
                    cfg: DistillConfig, progress: bool = True, pair_scores: PairScores | None = None,
                    set_mode: Callable[[torch.nn.Module, bool], None] = _train_mode) -> DistillResult:
    """Train ``student`` (a fake-quantized copy of ``teacher``) for ``cfg.steps`` steps towards ``teacher``'s
    outputs on ``samples``; the best state measured is kept. ``set_mode(module, train)`` switches train/eval
    mode (a PT2E graph has its own functions for it)."""
    pair = pair_scores if unit == "hoi_head" else None
    inputs = [sample_tensors(s) for s in samples]
    teacher = teacher.eval()
    with torch.no_grad():
        targets = [tuple(t.detach() for t in forward_outputs(teacher, x, pair)) for x in inputs]
    set_mode(student, False)
    before = best = mean_loss(student, inputs, targets, pair)
    best_state = copy.deepcopy(student.state_dict())
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    order = random.Random(cfg.seed)
    check_every = max(1, cfg.steps // max(1, cfg.checks))
    set_mode(student, True)
    bar = tqdm(range(1, cfg.steps + 1), desc=f"distill {unit}", disable=not progress, unit="step",
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining} ETA, {rate_fmt}]")
    started = time.perf_counter()
    for step in bar:
        if step == 2 and progress:        # one step timed: say up front how long the rest will take
            per_step = time.perf_counter() - started
            bar.write(f"distill {unit}: {per_step:.1f} s per step, about {estimate_text(per_step * cfg.steps)} "
                      f"for {cfg.steps} steps (plus {cfg.checks} loss checks over the calibration set)")
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
            set_mode(student, False)
            loss_now = mean_loss(student, inputs, targets, pair)
            if loss_now < best:
                best, best_state = loss_now, copy.deepcopy(student.state_dict())
            set_mode(student, True)
    student.load_state_dict(best_state)
    set_mode(student, False)
    terms = ("outputs", "pair_logits") if pair is not None else ("outputs",)
    return DistillResult(module=student, loss_before=before, loss_after=best, loss_terms=terms)


IR_MATCH_COSINE = MATCH_COSINE        # the name the manifest checks and tests used first


def openvino_run(model: Any, precision: str = "int8") -> tuple[Callable, str]:
    """An ``ov.Model`` compiled for the CPU exactly as :class:`~hoi_edge.runtime.openvino_runner.OpenVINORunner`
    compiles an artifact of ``precision`` (same inference-precision rule), and how it runs, in words."""
    import openvino as ov

    from hoi_edge.runtime.openvino_runner import cpu_inference_precision

    core = ov.Core()
    hint = cpu_inference_precision(precision, core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    config = {"INFERENCE_PRECISION_HINT": hint} if hint else {}
    compiled = core.compile_model(model, "CPU", config)

    def run(sample: UnitSample) -> list[np.ndarray]:
        got = compiled([np.asarray(a, np.float32) for a in sample])
        return [got[o] for o in compiled.outputs]

    return run, f"openvino {ov.__version__} CPU, inference precision {hint or 'plugin default'}"


def convert_distilled(student: torch.nn.Module, example: tuple[torch.Tensor, ...], samples: Sequence[UnitSample],
                      names: Sequence[str], checks: int = 3, any_cpu: bool = False
                      ) -> tuple[Any, Equality | None, str | None]:
    """``openvino.convert_model`` of the distilled ``student``, checked against it on this CPU: (model, equality,
    None), or (None, equality or None, why) when the IR does not compute what the student computes.

    Causes of a mismatch found so far, each fixed: size arithmetic in the attention reshapes (while tracing,
    sizes became tensors and NNCF's hooks, keyed by op name and call order, put quantizers on the wrong ops);
    the check itself compiling the IR with the CPU plugin's default precision (bf16 on AVX512-BF16 CPUs, which
    the runner no longer uses for INT8 artifacts); and int16 saturation of u8 x s8 pair sums on CPUs without
    VNNI (NNCF's OverflowFix, chosen by ``--int8-cpu``). With ``any_cpu`` (``--int8-cpu any``) on a CPU with
    VNNI, the IR is also checked with AVX2's INT8 kernels (:func:`compress.equality.openvino_emulated_check`),
    so an artifact exported here is known to be right on the CPUs without VNNI it may be deployed on."""
    import warnings

    import openvino as ov

    from compress.equality import check_equality, torch_run

    student.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # the trace check's warnings: measured below instead
            model = ov.convert_model(student, example_input=example)
    except Exception as exc:  # tracing an NNCF model can fail in many ways; all mean "not convertible"
        return None, None, f"openvino.convert_model failed on the distilled model: {str(exc).splitlines()[0][:200]}"
    run, runtime = openvino_run(model)
    expected = torch_run(student)
    equality = check_equality(expected, run, samples, names, runtime, checks)
    from hoi_edge.core.cpu import cpu_info

    if any_cpu and cpu_info().vnni and equality.passed:
        from compress.equality import openvino_emulated_check

        used = list(samples)[:checks]
        emulated = openvino_emulated_check(model, used, [expected(s) for s in used], names)
        if isinstance(emulated, str):
            equality.note = emulated
        else:
            equality.emulated = emulated
    return (model if equality.passed else None), equality, equality.reason()


def _strip_shared_quantizers(model: torch.nn.Module) -> int:
    """Finish ``nncf.strip(..., NATIVE)``: replace the NNCF quantizers it left, returns how many.

    NNCF 3.4 walks its hook storage with de-duplication, so a quantizer shared by several hooks (one scale for
    all inputs of a concatenation, as NanoDet's CSP blocks have) is replaced at its first hook only; the others
    kept the NNCF module, which the ONNX exporter writes as OpenVINO's custom ``FakeQuantize`` op (ONNX
    Runtime: "not a registered function/op"). Activation quantizers need no weight update, so each is
    converted as ``nncf.strip`` converts the first."""
    from nncf.torch.function_hook.wrapper import get_hook_storage
    from nncf.torch.quantization.layers import BaseQuantizer
    from nncf.torch.quantization.strip import convert_to_torch_fakequantizer

    converted: dict[int, torch.nn.Module] = {}
    for _, holder in get_hook_storage(model).named_modules(remove_duplicate=False):
        for key, child in list(holder.named_children()):
            if isinstance(child, BaseQuantizer):
                if id(child) not in converted:
                    converted[id(child)] = convert_to_torch_fakequantizer(child)
                setattr(holder, key, converted[id(child)])
    return len(converted)


def export_distilled_onnx(student: torch.nn.Module, example: tuple[torch.Tensor, ...], samples: Sequence[UnitSample],
                          input_names: Sequence[str], output_names: Sequence[str], opset: int, checks: int = 3
                          ) -> tuple[Any, Equality | None, str | None, dict[str, int]]:
    """The distilled NNCF ``student`` as a QDQ ONNX model: ``nncf.strip`` to PyTorch's own fake quantizers, which
    the exporter writes as QuantizeLinear/DequantizeLinear pairs, and the exact rewrites that let ONNX Runtime
    fuse integer kernels (:func:`compress.onnx_qdq.make_fusable`); then this final model is checked against the
    student in ONNX Runtime on this CPU, as :func:`convert_distilled` checks an IR. Returns (model, equality,
    None, rewrites) or (None, equality or None, why, rewrites)."""
    import io
    import warnings

    import onnx
    import onnxruntime as ort

    from compress.equality import check_equality, torch_run

    student.eval()
    try:
        native = nncf.strip(student, do_copy=True, strip_format=nncf.StripFormat.NATIVE, example_input=example)
        _strip_shared_quantizers(native)
        native.eval()
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the TorchScript exporter: torch.export cannot capture the hook wrapper NNCF keeps around the model
            torch.onnx.export(native, example, buffer, input_names=list(input_names), output_names=list(output_names),
                              dynamo=False, opset_version=opset)
        model = onnx.load_from_string(buffer.getvalue())
    except Exception as exc:  # noqa: BLE001 - any failure means "no distilled ONNX", said in the manifest
        return None, None, f"the QDQ ONNX export of the distilled model failed: {str(exc).splitlines()[0][:200]}", {}
    from compress.onnx_qdq import cpu_session, make_fusable

    model, rewrites = make_fusable(model)
    session = cpu_session(model)

    def run(sample: UnitSample) -> list[np.ndarray]:
        return session.run(None, {n: np.asarray(a, np.float32) for n, a in zip(input_names, sample)})

    equality = check_equality(torch_run(student), run, samples, output_names,
                              f"onnxruntime {ort.__version__} CPUExecutionProvider", checks)
    return (model if equality.passed else None), equality, equality.reason(), rewrites
