"""ExecuTorch .pte with the XNNPACK backend: FP32, or INT8 via the PT2E XNNPACK quantizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from compress.quantize import QuantizationConfig
from hoi_edge.runtime.manifest import TARGET_PRECISIONS
from targets.contract import UnitContract, as_tensors

SUFFIX = ".pte"
PRECISIONS = TARGET_PRECISIONS["executorch"]


def _pt2e_int8(module: torch.nn.Module, example: tuple[torch.Tensor, ...], samples) -> torch.nn.Module:
    """Static per-channel symmetric INT8 (XNNPACK's recipe), calibrated on the recorded unit inputs."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    graph = torch.export.export(module, example).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for sample in samples:
            prepared(*as_tensors(sample))
    return convert_pt2e(prepared)


def describe_int8(num_samples: int) -> dict[str, Any]:
    """What :func:`_pt2e_int8` does: one global XNNPACK config, nothing kept in floating point.

    NNCF's ignored patterns and ``--quantize-all`` do not apply here; every op the XNNPACK
    quantizer annotates is quantized.
    """
    return {"method": "torchao pt2e (prepare_pt2e / convert_pt2e)", "backend": "executorch xnnpack",
            "quantizer": "XNNPACKQuantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))",
            "scheme": "static INT8, symmetric, per-channel weights", "ignored_patterns": [],
            "calibration_samples": num_samples}


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None,
                validation=None) -> dict | None:
    """Write ``out``; returns the manifest's quantization entry (None unless INT8). ``qcfg`` and
    ``validation`` are unused: export.check_config rejects --val for this target."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    info = None
    if precision == "int8":
        import executorch.kernels.quantized  # noqa: F401  out-variants of q/dq ops left outside XNNPACK

        module, info = _pt2e_int8(module, example, samples), describe_int8(len(samples))
    program = torch.export.export(module, example)
    et = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    out.write_bytes(et.buffer)
    return info
