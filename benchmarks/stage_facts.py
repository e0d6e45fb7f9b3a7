"""What the per-stage benchmarks share (``bench_stages``, ``bench_runtimes``, ``bench_edge_towers``): the
multiply-accumulates of each export unit, this CPU's INT8 peak (from its ISA and measured), and the per-stage
table that divides one by the other."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hoi_edge.core.cpu import cpu_info

UNITS = ("detector", "clip_image", "hoi_head")

def unit_macs(model: Any) -> dict[str, int]:
    """MACs of one call of each export unit (batch 1, the contract's static shapes)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hoi_edge.runtime.torch_runner import pipeline_spec
    from targets.contract import unit_contracts

    contracts = unit_contracts(model, pipeline_spec(model))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    macs = {}
    try:
        for unit in UNITS:
            network = model.export_unit(unit).eval().requires_grad_(False)
            with FlopCounterMode(display=False) as counter:
                network(*contracts[unit].random_example())
            macs[unit] = int(counter.get_total_flops() // 2)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return macs


def isa_int8_peak(threads: int) -> tuple[float | None, str]:
    """(GMAC/s, how it was derived) from the CPU's flags and nominal clock; None when unknown."""
    cpu = cpu_info()
    per_cycle = cpu.int8_macs_per_cycle
    if per_cycle is None or cpu.mhz is None:
        return None, f"{cpu.name}: INT8 ISA or clock unknown"
    peak = per_cycle * threads * cpu.mhz / 1000.0
    return peak, f"{cpu.name}: {cpu.int8_isa} ({per_cycle} INT8 MAC/cycle/core) x {threads} cores x {cpu.mhz:.0f} MHz"


def measured_int8_peak(threads: int, m: int = 512, k: int = 2048, n: int = 2048, runs: int = 10) -> float:
    """Best GMAC/s of OpenVINO on an NNCF-INT8 (M,K)x(K,N) MatMul with ``threads`` threads."""
    import nncf
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([m, k], np.float32, name="x")
    w = ops.constant(rng.normal(size=(k, n)).astype(np.float32) * 0.02)
    model = ov.Model([ops.matmul(x, w, False, False)], [x], "gemm")
    data = [rng.normal(size=(m, k)).astype(np.float32) for _ in range(2)]
    int8 = nncf.quantize(model, nncf.Dataset(data), subset_size=2, fast_bias_correction=True)
    compiled = ov.Core().compile_model(int8, "CPU", {"INFERENCE_NUM_THREADS": str(threads)})
    request = compiled.create_infer_request()
    request.infer([data[0]])
    best = min(timed(lambda: request.infer([data[0]])) for _ in range(runs))
    return m * k * n / best / 1e9


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def stage_table(rows: dict[str, dict[str, float]], macs: dict[str, int], peak: float | None) -> str:
    """Markdown: one row per (backend, stage) with ms, achieved GMAC/s and its share of ``peak``."""
    from hoi_edge.validate.markdown import md_table

    head = ["Backend", "Stage", "GMAC", "ms", "GMAC/s", "% of INT8 peak"]
    body = []
    for label, seconds in rows.items():
        for unit in UNITS:
            if unit not in seconds or not seconds[unit]:
                continue
            gmacs = macs[unit] / seconds[unit] / 1e9
            rate = f"{gmacs:.1f}" if gmacs < 10 else f"{gmacs:.0f}"
            body.append([label, unit, f"{macs[unit] / 1e9:.2f}", f"{seconds[unit] * 1000:.1f}", rate,
                         "—" if not peak else f"{100 * gmacs / peak:.0f}%"])
    return md_table(head, body)


def peak_caption(threads: int, measured: float | None) -> tuple[float | None, str]:
    """The peak the table divides by (measured when available, else the ISA bound) and a caption for it."""
    isa, how = isa_int8_peak(threads)
    parts = [f"ISA bound {isa:.0f} GMAC/s ({how})" if isa else how]
    if measured:
        parts.append(f"measured peak {measured:.0f} GMAC/s (OpenVINO INT8 512x2048x2048 MatMul, {threads} threads)")
    return (measured or isa), "; ".join(parts) + "; % of INT8 peak uses the measured peak when present."
