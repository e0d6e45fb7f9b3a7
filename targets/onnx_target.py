"""ONNX (opset 18, torch.onnx dynamo exporter) for ONNX Runtime: FP32 or NNCF INT8 (QDQ): post-training,
accuracy-aware with a validation set, or quantization-aware distillation (NNCF torch QAT, ``nncf.strip``,
QDQ export) when ``distill`` is given."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import onnx
import torch

from compress.distill import DistillConfig, PairScores, export_distilled_onnx, quantize_and_distill
from compress.fp_layers import onnx_fp_layers
from compress.onnx_qdq import fusion_summary, optimized_op_counts
from compress.quantize import QuantizationConfig, choose_overflow_fix, quantize_onnx_with_report
from targets.contract import UnitContract
from targets.openvino_target import describe_distilled

OPSET = 18


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None, validation=None,
                distill: DistillConfig | None = None, pair_scores: PairScores | None = None,
                metric=None) -> dict | None:
    """Write ``out``; returns the manifest's quantization entry (None unless INT8)."""
    qcfg, overflow = qcfg or QuantizationConfig(), {}
    if precision == "int8":      # the OverflowFix this unit needs on the CPUs it is exported for (measured)
        qcfg, overflow = choose_overflow_fix(module, example, contract.name, samples, qcfg)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    info, model, discarded = None, None, None
    if precision == "int8" and distill is not None:
        result = quantize_and_distill(module, contract.name, samples, qcfg, distill, pair_scores=pair_scores)
        model, equality, discarded, rewrites = export_distilled_onnx(result.module, example, samples,
                                                                     list(contract.inputs), contract.outputs, OPSET)
        info = {**describe_distilled(contract.name, qcfg, len(samples), distill, result, pair_scores),
                "backend": "torch, nncf.strip (native fake quantizers), then torch.onnx QDQ export",
                "ir_vs_distilled_cosine": equality.worst if equality else None}
        if equality is not None:
            info["equality"] = equality.describe()
        info.update(rewrites)
        if discarded is not None:
            print(f"hoi-edge: WARNING {contract.name}: distillation discarded, {discarded}; using post-training "
                  "INT8 for this unit (recorded in the manifest)", file=sys.stderr)
    exported = None
    if model is None:
        program = torch.onnx.export(module, example, input_names=list(contract.inputs),
                                    output_names=list(contract.outputs), dynamo=True, opset_version=OPSET,
                                    verbose=False)
        model = exported = program.model_proto
        if precision == "int8":
            model, report = quantize_onnx_with_report(model, contract.name, samples, qcfg, validation, metric)
            ptq = {"method": "nncf.quantize", "backend": "onnx", "format": "QDQ",
                   "constant_folding": "onnxruntime basic", **qcfg.describe(contract.name, len(samples)),
                   "bias_quantization": "int32, scale = input scale x weight scale (lets ONNX Runtime fuse "
                                        "QGemm / QLinearConv)",
                   **report}
            if qcfg.max_drop is not None and validation:
                from compress.task_metrics import metric_for

                ptq.update(method="nncf.quantize_with_accuracy_control", max_drop=qcfg.max_drop,
                           drop_type="absolute", metric=metric_for(contract.name, metric).name,
                           validation_samples=len(validation))
            info = ptq if discarded is None else {**ptq, "distillation_discarded": discarded, "distillation": info}
    if precision == "int8":
        # what ONNX Runtime's CPU provider actually runs: fused integer kernels vs layers left in float
        info["onnxruntime_graph"] = fusion_summary(optimized_op_counts(model))
        info.update(fp_layers=onnx_fp_layers(model, exported), **overflow)
    onnx.save_model(model, str(out), save_as_external_data=False)
    return info
