"""OpenVINO IR (.xml/.bin): FP32, FP16 (compressed weights) or NNCF INT8 (post-training, or
quantization-aware distillation from the FP32 unit when ``distill`` is given)."""

from __future__ import annotations

from pathlib import Path

import openvino as ov
import torch

from compress.distill import DistillConfig, quantize_and_distill
from compress.quantize import QuantizationConfig, quantize_openvino
from targets.contract import UnitContract

SUFFIX = ".xml"
PRECISIONS = ("fp32", "fp16", "int8")


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None, validation=None,
                distill: DistillConfig | None = None) -> dict | None:
    """Write ``out``; returns what the manifest should record about distillation (None without it)."""
    qcfg = qcfg or QuantizationConfig()
    info = None
    if precision == "int8" and distill is not None:
        result = quantize_and_distill(module, contract.name, samples, qcfg, distill)
        module, info = result.module, result.describe(distill)
    model = ov.convert_model(module, example_input=example)
    for port, name in zip(model.inputs, contract.inputs):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, contract.outputs):
        port.get_tensor().set_names({name})
    if precision == "int8" and distill is None:
        model = quantize_openvino(model, contract.name, samples, qcfg, validation)
    ov.save_model(model, out, compress_to_fp16=(precision == "fp16"))
    return info
