"""ONNX (opset 18, torch.onnx dynamo exporter) for ONNX Runtime: FP32 or NNCF INT8 (QDQ)."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch

from compress.onnx_qdq import fusion_summary, optimized_op_counts
from compress.quantize import QuantizationConfig, quantize_onnx_with_report
from targets.contract import UnitContract

OPSET = 18


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None, validation=None) -> dict | None:
    """Write ``out``; returns the manifest's quantization entry (None unless INT8). ``validation`` is unused:
    ONNX INT8 is always plain post-training quantization (export.check_config rejects --val for it)."""
    qcfg = qcfg or QuantizationConfig()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    program = torch.onnx.export(module, example, input_names=list(contract.inputs),
                                output_names=list(contract.outputs), dynamo=True, opset_version=OPSET,
                                verbose=False)
    model = program.model_proto
    info = None
    if precision == "int8":
        model, report = quantize_onnx_with_report(model, contract.name, samples, qcfg)
        info = {"method": "nncf.quantize", "backend": "onnx", "format": "QDQ",
                "constant_folding": "onnxruntime basic", **qcfg.describe(contract.name, len(samples)),
                "bias_quantization": "int32, scale = input scale x weight scale (lets ONNX Runtime fuse QGemm)",
                **report,
                # what ONNX Runtime's CPU provider actually runs: fused integer kernels vs layers left in float
                "onnxruntime_graph": fusion_summary(optimized_op_counts(model))}
    onnx.save_model(model, str(out), save_as_external_data=False)
    return info
