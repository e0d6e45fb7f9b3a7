"""ExecuTorch .pte with the XNNPACK backend: FP32, or INT8 via the PT2E XNNPACK quantizer (post-training,
accuracy-aware with a validation set, or quantization-aware distillation from the FP32 unit; see
:mod:`compress.pt2e`)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compress.distill import DistillConfig, PairScores
from compress.quantize import QuantizationConfig
from hoi_edge.model.ops import decompose_layer_norms, write_out_attention
from targets.contract import UnitContract


def describe_int8(unit: str, qcfg: QuantizationConfig, num_samples: int, fp_names: list[str]) -> dict[str, Any]:
    """What the XNNPACK quantizer was told: one global config, the unit's sensitive modules in FP."""
    return {"method": "torchao pt2e (prepare_pt2e / convert_pt2e)", "backend": "executorch xnnpack",
            "quantizer": ("XNNPACKQuantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))"
                          ".set_module_type(DecomposedLayerNorm, None).set_module_name(<each fp module>, None)"),
            "scheme": "static INT8, symmetric, per-channel weights; layer norms (written out for XNNPACK) in FP32",
            "ignored_patterns": qcfg.ignored_scope(unit).patterns, "fp_modules": fp_names,
            "calibration_samples": num_samples}


def lower(graph: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """``to_edge_transform_and_lower`` with the XNNPACK partitioner."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(torch.export.export(graph, example), partitioner=[XnnpackPartitioner()])


def executorch_run(buffer: bytes):
    """The lowered program, loaded by the ExecuTorch runtime, as a NumPy-in/NumPy-out function."""
    import executorch.kernels.quantized  # noqa: F401
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(buffer).load_method("forward")

    def run(sample) -> list[np.ndarray]:
        outs = method.execute([torch.from_numpy(np.array(a, dtype=np.float32, order="C")) for a in sample])
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outs]

    return run


def _distilled(module, contract: UnitContract, example, samples, qcfg, distill, pair_scores, fp_names
               ) -> tuple[tuple[Any, bytes] | None, dict[str, Any], str | None]:
    """PT2E QAT + distillation, converted and lowered: ((lowered program, its buffer) or None, manifest entry,
    why it was discarded or None).

    Two checks, both recorded with the CPU's ISA. The conversion must be the distilled model: the converted
    graph (``convert_pt2e``: quantize/dequantize pairs, the reference semantics XNNPACK implements) against the
    trained QAT student, every output's cosine >= :data:`compress.equality.MATCH_COSINE` (a misplaced or
    missing quantizer fails here). The program must run it faithfully: the ExecuTorch runtime against the
    converted graph, >= :data:`compress.equality.RUNTIME_FIDELITY` — XNNPACK's integer kernels round otherwise
    than the reference graph, and over NanoDet-g's CSP backbone that alone costs the post-training INT8
    detector 0.0012 of cosine (0.9988 on the AMD EPYC), each block on its own staying above 0.99999."""
    from compress.distill import distill_student
    from compress.equality import RUNTIME_FIDELITY, check_equality, torch_run
    from compress.pt2e import convert_student, qat_student, set_pt2e_mode

    student = qat_student(module, example, samples, fp_names)
    result = distill_student(student, module, contract.name, samples, distill, pair_scores=pair_scores,
                             set_mode=set_pt2e_mode)
    converted = convert_student(result.module)
    equality = check_equality(torch_run(result.module), torch_run(converted), samples, contract.outputs,
                              "torchao convert_pt2e graph (quantize/dequantize reference)")
    lowered = lower(converted, example)
    buffer = lowered.to_executorch().buffer
    runtime = check_equality(torch_run(converted), executorch_run(buffer), samples, contract.outputs,
                             "executorch xnnpack (python runtime)")
    info = {**describe_int8(contract.name, qcfg, len(samples), fp_names),
            "method": "torchao pt2e QAT (prepare_qat_pt2e / convert_pt2e) + distillation",
            **result.describe(distill), "ir_vs_distilled_cosine": equality.worst, "equality": equality.describe(),
            "runtime_fidelity": {**runtime.describe(), "threshold": RUNTIME_FIDELITY,
                                 "passed": runtime.worst >= RUNTIME_FIDELITY}}
    if pair_scores is not None and "pair_logits" in result.loss_terms:
        info.update(pair_scores.describe())
    from compress.fp_layers import pt2e_fp_layers

    info["fp_layers"] = pt2e_fp_layers(converted)
    why = equality.reason()
    if why is None and runtime.worst < RUNTIME_FIDELITY:
        why = (f"the ExecuTorch program does not run its converted graph faithfully on {runtime.cpu.get('isa')}: "
               f"output cosine {runtime.worst:.4f} < {RUNTIME_FIDELITY}")
    return ((lowered, buffer) if why is None else None), info, why


def export_unit(module: torch.nn.Module, contract: UnitContract, example: tuple[torch.Tensor, ...], out: Path,
                precision: str, samples=None, qcfg: QuantizationConfig | None = None, validation=None,
                distill: DistillConfig | None = None, pair_scores: PairScores | None = None,
                metric=None) -> dict | None:
    """Write ``out``; returns the manifest's notes: ``delegation`` (every precision: how much XNNPACK runs) and,
    for INT8, the quantization entry (accuracy-aware with ``validation`` and ``qcfg.max_drop``, judged by the
    unit's task ``metric``; distilled with ``distill``)."""
    from compress.fp_layers import pt2e_fp_layers
    from compress.pt2e import quantize_accuracy_aware, quantize_ptq, sensitive_names

    qcfg = qcfg or QuantizationConfig()
    module = copy.deepcopy(module)       # the caller's module (the live HOI head, CLIP) stays as it was
    decompose_layer_norms(module)        # XNNPACK has no layer norm: its elementwise form is delegated
    write_out_attention(module)          # nor the fused attention's mask ops: CLIP's ViT layers stay whole
    info, lowered, buffer = None, None, None
    if precision == "int8":
        import executorch.kernels.quantized  # noqa: F401  out-variants of q/dq ops left outside XNNPACK

        fp_names = sensitive_names(module, contract.name, qcfg)
        discarded, distilled_info = None, None
        if distill is not None:
            shipped, distilled_info, discarded = _distilled(module, contract, example, samples, qcfg, distill,
                                                            pair_scores, fp_names)
            info = distilled_info
            if shipped is not None:
                lowered, buffer = shipped
            if discarded is not None:
                print(f"hoi-edge: WARNING {contract.name}: distillation discarded, {discarded}; using post-training "
                      "INT8 for this unit (recorded in the manifest)", file=sys.stderr)
        if lowered is None:
            info = describe_int8(contract.name, qcfg, len(samples), fp_names)
            if qcfg.max_drop is not None and validation:
                from compress.task_metrics import metric_for

                converted, achieved = quantize_accuracy_aware(module, example, samples, validation, contract.name,
                                                              qcfg, metric_for(contract.name, metric))
                info.update(achieved)
            else:
                converted = quantize_ptq(module, example, samples, fp_names)
            info["fp_layers"] = pt2e_fp_layers(converted)
            if discarded is not None:
                info.update(distillation_discarded=discarded, distillation=distilled_info)
            lowered = lower(converted, example)
    if lowered is None:
        lowered = lower(module, example)
    delegation = delegation_summary(lowered)
    out.write_bytes(buffer if buffer is not None else lowered.to_executorch().buffer)
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
