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
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, random_checkpoint  # noqa: E402
from stage_facts import UNITS, measured_int8_peak, peak_caption, stage_table, timed, unit_macs  # noqa: E402


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
        out[unit] = float(np.median([timed(lambda: runner.call(unit, *args)) for _ in range(runs)]))
    return out


def reference_unit_inputs(model: Any, image: Path) -> dict[str, tuple[np.ndarray, ...]]:
    from compress.calibration import collect_unit_inputs
    from hoi_edge.runtime.torch_runner import detector_from_model

    samples = collect_unit_inputs(detector_from_model(model), [image])
    return {unit: samples[unit][0] for unit in UNITS}


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
        out[unit] = float(np.median([timed(lambda: fn(*inputs[unit])) for _ in range(runs)]))
    return out


if __name__ == "__main__":
    sys.exit(main())
