"""OpenVINO IR (.xml/.bin): FP32, FP16 (compressed weights) or NNCF INT8 (post-training, accuracy-aware
with a validation set, or quantization-aware distillation from the FP32 unit when ``distill`` is given)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import openvino as ov
import torch

from compress.distill import DistillConfig, PairScores, convert_distilled, quantize_and_distill
from compress.fp_layers import openvino_fp_layers
from compress.quantize import QuantizationConfig, choose_overflow_fix, quantize_openvino_with_report
from targets.contract import UnitContract


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None, validation=None,
                distill: DistillConfig | None = None, pair_scores: PairScores | None = None,
                metric=None) -> dict | None:
    """Write ``out``; returns what the manifest should record about quantization (None unless INT8).
    ``metric`` is the unit's task metric for accuracy-aware INT8 (:mod:`compress.task_metrics`)."""
    qcfg, overflow = qcfg or QuantizationConfig(), {}
    if precision == "int8":      # the OverflowFix this unit needs on the CPUs it is exported for (measured)
        qcfg, overflow = choose_overflow_fix(module, example, contract.name, samples, qcfg)
    info, model, discarded = None, None, None
    if precision == "int8" and distill is not None:
        result = quantize_and_distill(module, contract.name, samples, qcfg, distill, pair_scores=pair_scores)
        # the IR must be exactly the distilled model: converted, then checked against it on calibration inputs
        model, equality, discarded = convert_distilled(result.module, example, samples, contract.outputs,
                                                       any_cpu=qcfg.target_cpu == "any")
        info = describe_distilled(contract.name, qcfg, len(samples), distill, result, pair_scores)
        info["ir_vs_distilled_cosine"] = equality.worst if equality else None
        if equality is not None:
            info["equality"] = equality.describe()
        if discarded is not None:       # a wrong IR is worse than none: this unit gets post-training INT8
            print(f"hoi-edge: WARNING {contract.name}: distillation discarded, {discarded}; using post-training "
                  "INT8 for this unit (recorded in the manifest)", file=sys.stderr)
    if model is None:
        model = ov.convert_model(module, example_input=example)
    for port, name in zip(model.inputs, contract.inputs):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, contract.outputs):
        port.get_tensor().set_names({name})
    if precision == "int8" and (distill is None or discarded is not None):
        model, achieved = quantize_openvino_with_report(model, contract.name, samples, qcfg, validation, metric)
        ptq = {**describe_ptq(contract.name, qcfg, len(samples), validation, metric), **achieved}
        info = ptq if discarded is None else {**ptq, "distillation_discarded": discarded, "distillation": info}
    if precision == "int8":
        info.update(fp_layers=openvino_fp_layers(model), **overflow)
    ov.save_model(model, out, compress_to_fp16=(precision == "fp16"))
    return info


def describe_ptq(unit: str, qcfg: QuantizationConfig, num_samples: int, validation, metric=None) -> dict[str, Any]:
    """The manifest entry for NNCF post-training INT8, as :func:`quantize_openvino` ran it."""
    info = {"method": "nncf.quantize", "backend": "openvino", **qcfg.describe(unit, num_samples)}
    if qcfg.max_drop is not None and validation:
        from compress.task_metrics import metric_for

        info.update(method="nncf.quantize_with_accuracy_control", max_drop=qcfg.max_drop, drop_type="absolute",
                    metric=metric_for(unit, metric).name, validation_samples=len(validation))
    return info


def describe_distilled(unit: str, qcfg: QuantizationConfig, num_samples: int, distill: DistillConfig, result,
                       pair_scores: PairScores | None) -> dict[str, Any]:
    """The manifest entry for NNCF torch INT8 + distillation, as :func:`quantize_and_distill` ran it."""
    info = {**qcfg.describe(unit, num_samples), "backend": "torch, then openvino.convert_model",
            "bias_correction": False, "smooth_quant": False, **result.describe(distill)}
    info.pop("fast_bias_correction")
    if pair_scores is not None and "pair_logits" in result.loss_terms:
        info.update(pair_scores.describe())
    return info
