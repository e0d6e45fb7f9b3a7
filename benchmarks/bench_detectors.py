"""DETR-R50 against NanoDet-g as CLIP4HOI's detector, both at full size, side by side in one run.

    python benchmarks/bench_detectors.py --threads 2 --runs 14

Builds two random-init checkpoints (``clip4hoi-base``: DETR-R50 640 px + CLIP ViT-B/16;
``clip4hoi-nanodet``: the real NanoDet-g 416 px weights npm ships + the same random CLIP ViT-B/16),
exports each to one target/precision (OpenVINO INT8 by default, calibrated on the photos), then times
both artifacts and the PyTorch DETR reference interleaved run by run (``hoi-edge benchmark``) and
prints the per-stage medians. Latency does not depend on the CLIP or HOI-head weights, so random
ones measure what users will see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from common import SHARED, export_all, random_checkpoint  # noqa: E402

from hoi_edge.pipeline.detector import STAGES  # noqa: E402
from hoi_edge.validate import BenchmarkConfig, benchmark  # noqa: E402
from hoi_edge.validate.markdown import md_table  # noqa: E402

PRESETS = ("clip4hoi-base", "clip4hoi-nanodet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/hoi-edge-detectors"))
    parser.add_argument("--target", default="openvino")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--photos", type=Path, default=SHARED / "photos")
    parser.add_argument("--calib-size", type=int, default=14)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=14)
    parser.add_argument("--reuse", action="store_true", help="keep artifacts already exported from the checkpoints")
    args = parser.parse_args(argv)

    args.work.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for preset in PRESETS:
        checkpoint = random_checkpoint(args.work, preset)
        work = args.work / preset
        exported = export_all(checkpoint, work, [args.target], args.photos, args.calib_size, args.reuse,
                              [args.precision])
        artifacts.append(exported[0][0])
    report = benchmark(BenchmarkConfig(images=args.photos, reference=random_checkpoint(args.work, PRESETS[0]),
                                       artifacts=artifacts, warmup=args.warmup, runs=args.runs,
                                       threads=args.threads, progress=False))
    print(report.to_markdown())
    rows = []
    for entry, preset in zip(report.entries, ("clip4hoi-base (reference)", *PRESETS)):
        stages = entry.latency.stages if entry.latency else {}
        rows.append([f"{entry.label} · {preset}", *(f"{stages[s].median_ms:.1f}" if s in stages else "—"
                                                   for s in STAGES),
                     f"{entry.latency.median_ms:.1f}" if entry.latency else "—"])
    print("\nPer stage, median ms:\n")
    print(md_table(["Backend · model", *STAGES, "total"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
