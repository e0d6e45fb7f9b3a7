"""Per-stage achieved GMAC/s of exported artifacts, next to this CPU's INT8 peak.

    python benchmarks/bench_stages.py --random-preset clip4hoi-base --artifacts ART [ART ...] --threads 2
    python benchmarks/bench_stages.py --model model.pt --artifacts ART ... --threads 2

For each network (detector, CLIP image encoder, HOI head) the multiply-accumulates of one call are
counted on the PyTorch module the targets export (``torch.utils.flop_counter``: conv, linear,
matmul/bmm, attention; MACs = FLOPs / 2; nn.MultiheadAttention's fused fast path is switched off
so its projections are counted). Each artifact's unit is then timed alone on the inputs a real
photo gives it (median of ``--runs`` calls after warm-up), and GMAC/s = MACs / median seconds.

The peak is given two ways: the ISA bound, (INT8 MACs per cycle per core from the CPU's flags) x
cores x clock (``cpu MHz`` of /proc/cpuinfo, the nominal clock a VM reports), and the measured
peak: the best GMAC/s OpenVINO reaches on a large INT8 MatMul (NNCF-quantized) with the same
threads, which is what a perfectly fused network could reach. A stage far below it is where to look
(ops left in FP32, layout reorders, bf16/fp16 emulation). Timings depend on the machine's load:
compare rows of one run only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, random_checkpoint  # noqa: E402

from hoi_edge.core.cpu import cpu_info  # noqa: E402

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
    best = min(_timed(lambda: request.infer([data[0]])) for _ in range(runs))
    return m * k * n / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_units(folder: Path, inputs: dict[str, tuple[np.ndarray, ...]], threads: int | None, runs: int,
               warmup: int = 2) -> dict[str, float]:
    """Median seconds of each unit of the artifact in ``folder`` on ``inputs`` (the reference's unit inputs)."""
    from hoi_edge import HOIDetector

    runner = HOIDetector.from_artifact(folder, num_threads=threads).runner
    out = {}
    for unit in UNITS:
        args = inputs[unit]
        for _ in range(warmup):
            runner.call(unit, *args)
        out[unit] = float(np.median([_timed(lambda: runner.call(unit, *args)) for _ in range(runs)]))
    return out


def reference_unit_inputs(model: Any, image: Path) -> dict[str, tuple[np.ndarray, ...]]:
    from compress.calibration import collect_unit_inputs
    from hoi_edge.runtime.torch_runner import detector_from_model

    samples = collect_unit_inputs(detector_from_model(model), [image])
    return {unit: samples[unit][0] for unit in UNITS}


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="checkpoint the artifacts were exported from")
    ap.add_argument("--random-preset", default=None, help="or a random-init preset (e.g. clip4hoi-base)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hoi-edge-bench-runtimes")
    ap.add_argument("--artifacts", type=Path, nargs="*", default=[], help="artifact folders to time")
    ap.add_argument("--image", type=Path, default=SHARED / "photos" / "zidane.jpg")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--reference", action="store_true", help="also time the PyTorch FP32 reference per unit")
    ap.add_argument("--no-measured-peak", action="store_true", help="skip the INT8 MatMul peak measurement")
    args = ap.parse_args(argv)

    from hoi_edge.weights.checkpoint import load_model

    if args.random_preset:
        args.work.mkdir(parents=True, exist_ok=True)
        checkpoint = random_checkpoint(args.work, args.random_preset)
    elif args.model:
        checkpoint = args.model
    else:
        ap.error("pass --model or --random-preset")
    model = load_model(checkpoint)
    threads = args.threads or os.cpu_count() or 1
    macs = unit_macs(model)
    inputs = reference_unit_inputs(model, args.image)
    rows: dict[str, dict[str, float]] = {}
    if args.reference:
        rows["pytorch/fp32"] = _time_reference(model, inputs, threads, args.runs)
    for folder in args.artifacts:
        from hoi_edge.runtime.manifest import Manifest

        m = Manifest.read(folder)
        rows[f"{m.target}/{m.precision}"] = time_units(folder, inputs, args.threads, args.runs)
    measured = None if args.no_measured_peak else measured_int8_peak(threads)
    peak, caption = peak_caption(threads, measured)
    print(stage_table(rows, macs, peak))
    print()
    print("MACs per call: " + ", ".join(f"{u} {macs[u] / 1e9:.2f} G" for u in UNITS) + f"; {caption} "
          f"Median of {args.runs} calls per unit on {args.image.name}'s inputs, {threads} threads.")
    return 0


def _time_reference(model: Any, inputs: dict[str, tuple[np.ndarray, ...]], threads: int, runs: int
                    ) -> dict[str, float]:
    import torch

    from hoi_edge.runtime.torch_runner import TorchRunner

    torch.set_num_threads(threads)
    runner = TorchRunner(model)
    out = {}
    for unit in UNITS:
        fn = getattr(runner, unit)
        fn(*inputs[unit])
        out[unit] = float(np.median([_timed(lambda: fn(*inputs[unit])) for _ in range(runs)]))
    return out


if __name__ == "__main__":
    sys.exit(main())
