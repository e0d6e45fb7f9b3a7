"""ExecuTorch .pte with the XNNPACK backend: FP32, or INT8 via the PT2E XNNPACK quantizer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from compress.quantize import QuantizationConfig
from hoi_edge.model.ops import DecomposedLayerNorm, decompose_layer_norms, write_out_attention
from targets.contract import UnitContract, as_tensors


def _pt2e_int8(module: torch.nn.Module, example: tuple[torch.Tensor, ...], samples) -> torch.nn.Module:
    """Static per-channel symmetric INT8 (XNNPACK's recipe), calibrated on the recorded unit inputs."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    # layer norms stay FP32 (inside the delegate): their statistics are too sensitive for per-tensor INT8
    quantizer = (XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
                 .set_module_type(DecomposedLayerNorm, None))
    from hoi_edge.model.end_to_end import FP_MODULES     # end-to-end: selection, resampling, scoring stay FP32

    for fp_module in FP_MODULES:
        quantizer.set_module_type(fp_module, None)
    graph = torch.export.export(module, example).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for sample in samples:
            prepared(*as_tensors(sample))
    return convert_pt2e(prepared)


def describe_int8(num_samples: int) -> dict[str, Any]:
    """What :func:`_pt2e_int8` does: one global XNNPACK config; only the layer norms stay in floating point.

    NNCF's ignored patterns and ``--quantize-all`` do not apply here; every other op the XNNPACK
    quantizer annotates is quantized.
    """
    return {"method": "torchao pt2e (prepare_pt2e / convert_pt2e)", "backend": "executorch xnnpack",
            "quantizer": ("XNNPACKQuantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))"
                          ".set_module_type(DecomposedLayerNorm, None)"),
            "scheme": "static INT8, symmetric, per-channel weights; layer norms (written out for XNNPACK) in FP32",
            "ignored_patterns": [],
            "calibration_samples": num_samples}


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None,
                validation=None) -> dict | None:
    """Write ``out``; returns the manifest's notes: ``delegation`` (every precision: how much XNNPACK runs) and,
    for INT8, the quantization entry. ``qcfg`` and ``validation`` are unused: export.check_config rejects --val
    for this target."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = copy.deepcopy(module)       # the caller's module (the live HOI head, CLIP) stays as it was
    decompose_layer_norms(module)        # XNNPACK has no layer norm: its elementwise form is delegated
    write_out_attention(module)          # nor the fused attention's mask ops: CLIP's ViT layers stay whole
    info = None
    if precision == "int8":
        import executorch.kernels.quantized  # noqa: F401  out-variants of q/dq ops left outside XNNPACK

        module, info = _pt2e_int8(module, example, samples), describe_int8(len(samples))
    program = torch.export.export(module, example)
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    delegation = delegation_summary(lowered)
    out.write_bytes(lowered.to_executorch().buffer)
    return {**(info or {}), "delegation": delegation}


#: Graph plumbing that computes nothing (a delegate call's outputs are unpacked by ``getitem``).
_NOT_COMPUTE = ("getitem", "Total")


def delegation_summary(lowered: Any) -> dict[str, Any]:
    """How much of a lowered program XNNPACK runs: compute nodes inside delegates vs left to ExecuTorch's
    portable kernels (per op type), from ``executorch.devtools.backend_debug.get_delegation_info``."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(lowered.exported_program().graph_module)
    portable = {op: b.non_delegated for op, b in sorted(info.delegation_by_operator.items())
                if b.non_delegated and op not in _NOT_COMPUTE}
    delegated, left = info.num_delegated_nodes, sum(portable.values())
    return {"backend": "xnnpack", "delegate_calls": info.num_delegated_subgraphs, "delegated_nodes": delegated,
            "portable_nodes": left, "delegated_share": round(delegated / max(delegated + left, 1), 4),
            "portable_ops": portable}
