"""End-to-end (one network) vs three-unit artifacts: size and latency side by side, in one run.

    python benchmarks/bench_end_to_end.py --threads 2                       # tiny test model (default)
    python benchmarks/bench_end_to_end.py --random-preset clip4hoi-base --threads 2 --runs 14

Exports each target in ``--targets`` (default ExecuTorch and OpenVINO) at ``--precision`` (default int8,
calibrated on the photos) in both layouts from the same checkpoint, then times ``HOIDetector.run`` (letterbox,
networks, post-processing: everything between a decoded RGB image and the triplets) on the photos, cycling
them, after warm-up runs. Prints a markdown table and its caption. Latency on a shared machine is noisy:
compare rows of one run, not across runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_caption, random_checkpoint, tiny_checkpoint  # noqa: E402

from compress.calibration import CalibrationConfig  # noqa: E402
from hoi_edge import HOIDetector  # noqa: E402
from hoi_edge.pipeline.preprocess import load_image  # noqa: E402
from hoi_edge.testing import shared_data_dir  # noqa: E402
from hoi_edge.validate.markdown import md_table  # noqa: E402
from targets.export import ExportConfig, export_artifact  # noqa: E402

LAYOUTS = ("three-unit", "end-to-end")


def folder_mb(folder: Path) -> float:
    """Everything the device needs (networks, text bank, vocabulary, manifest)."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def time_runs(detector: HOIDetector, images: list[np.ndarray], warmup: int, runs: int) -> np.ndarray:
    for i in range(warmup):
        detector.run(images[i % len(images)])
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        detector.run(images[i % len(images)])
        out.append(time.perf_counter() - t0)
    return 1000 * np.asarray(out)


def main(argv: list[str] | None = None) -> int:
    from hoi_edge.core.noise import configure

    configure()                 # third-party log noise (NNCF INFO, tracer warnings) hidden, as in the CLI
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the tiny random test model)")
    ap.add_argument("--random-preset", default=None, help="random-init checkpoint of a preset, e.g. clip4hoi-base")
    ap.add_argument("--targets", nargs="+", default=["executorch", "openvino"])
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--runs", type=int, default=28)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench_work/end_to_end"))
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.model:
        checkpoint = args.model
    elif args.random_preset:
        checkpoint = random_checkpoint(args.work, args.random_preset)
    else:
        checkpoint = tiny_checkpoint(args.work)
    photos = sorted((shared_data_dir() / "photos").glob("*.*"))
    images = [load_image(p) for p in photos]
    calib = CalibrationConfig(shared_data_dir() / "photos", max_images=len(photos))
    rows = []
    for target in args.targets:
        ms = {}
        for layout in LAYOUTS:
            out = args.work / f"{checkpoint.stem}-{target}-{args.precision}-{layout}"
            if not (out / "manifest.json").is_file():
                t0 = time.perf_counter()
                export_artifact(ExportConfig(checkpoint=checkpoint, target=target, out=out, precision=args.precision,
                                             calibration=calib if args.precision == "int8" else None,
                                             end_to_end=layout == "end-to-end", overwrite=True))
                print(f"exported {out.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            det = HOIDetector.from_artifact(out, num_threads=args.threads)
            t = time_runs(det, images, args.warmup, args.runs)
            ms[layout] = float(np.median(t))
            rows.append([f"{target}/{args.precision}", layout, f"{folder_mb(out):.1f}", f"{np.median(t):.1f}",
                         f"{np.percentile(t, 90):.1f}", f"{ms['three-unit'] / ms[layout]:.2f}x"])
    print(md_table(["Artifact", "Layout", "Size (MB)", "Median ms", "p90 ms", "Speed-up vs three-unit"], rows))
    print(f"\n{args.threads or 'default'} threads; "
          f"{args.runs} timed runs of HOIDetector.run cycling {len(images)} photos after {args.warmup} warm-up runs; "
          f"checkpoint {checkpoint.name}; size = every file of the artifact folder. {cpu_caption()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
