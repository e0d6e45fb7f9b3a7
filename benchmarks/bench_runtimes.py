"""Export a checkpoint to every target and precision, validate every artifact against the PyTorch
reference, and print the docs table. This script is the source of every runtime number in
docs/validation.md: re-run it to reproduce them (numbers depend on the CPU; the table says which).

    python benchmarks/bench_runtimes.py --model model.pt          # your checkpoint
    python benchmarks/bench_runtimes.py                           # the tiny random test model

Steps: (1) the checkpoint (``--model``, or the tiny random-init model of the test suite saved into
the work dir); (2) artifacts for OpenVINO fp32/fp16/int8, ONNX fp32/int8, ExecuTorch fp32/int8
(INT8 calibrated on ``--calib``); (3) ``validate`` on the 2 real HICO-DET test images (mAP with
ground truth) and on the unlabelled photos (agreement + latency), each backend in a fresh
process with ``--threads`` threads; (4) ``benchmark`` on the photos; (5) the README table and
its caption (CPU, threads, runs, package versions), printed exactly as the README shows them:
paste them verbatim, never edit columns by hand.

With a random-init model (the default, or ``--random-preset``) mAP is 0 for every backend (it
detects nothing real), so the table leaves the mAP columns out and only the agreement, latency,
memory and size columns carry information; use a trained checkpoint for accuracy numbers.
Smallest smoke run: ``--targets onnx --precisions fp32 --runs 3 --warmup 0 --validate-runs 1``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, export_all, random_checkpoint, tiny_checkpoint  # noqa: E402
from stage_facts import UNITS, measured_int8_peak, peak_caption, stage_table, unit_macs  # noqa: E402

from hoi_edge.targets_registry import runtime_packages, target_names  # noqa: E402
from hoi_edge.validate import (  # noqa: E402
    BenchmarkConfig,
    BenchmarkReport,
    Thresholds,
    ValidateConfig,
    ValidationReport,
    benchmark,
    validate,
)
from hoi_edge.validate.markdown import fmt_memory, md_table, speedup_header  # noqa: E402

ALL_TARGETS = target_names()


def readme_table(hico: ValidationReport, photos: ValidationReport, bench: BenchmarkReport,
                 random_init: bool = False) -> str:
    """The README table and its caption, to be pasted verbatim: one row per backend with mAP and its
    drop on the GT images (left out for a random-init checkpoint, where it is 0 everywhere),
    agreement on the photos, and latency / throughput / memory from the benchmark runs."""
    k = photos.settings["top_k"]
    with_map = not random_init
    head = ["Model", "Size (MB)", *(["mAP Full", "Δ mAP"] if with_map else []), f"Top-{k} agree", "Score MAE",
            "Median ms", "p90 ms", "img/s", "Peak RSS MB (+model)", speedup_header(bench.settings["device"])]
    by_label = {b.label: b for b in hico.backends}
    agreement = {b.label: b.agreement for b in photos.backends}
    rows = []
    for b in bench.entries:
        h = by_label.get(b.label)
        full = h.accuracy.full if h and h.accuracy else None
        drop = h.map_drop.get("full") if h and h.map_drop else None
        g = agreement.get(b.label)
        rows.append([b.label, f"{b.spec.size_bytes / 2**20:.1f}",
                     *(["—" if full is None else f"{full:.2f}", "—" if drop is None else f"{drop:+.2f}"]
                       if with_map else []),
                     agreement_cell(g),
                     f"{g.score_mae:.4f}" if g and g.score_mae is not None else "—", f"{b.latency.median_ms:.1f}",
                     f"{b.latency.p90_ms:.1f}", f"{b.latency.throughput_ips:.2f}", fmt_memory(b.memory),
                     f"{b.speedup:.2f}x"])
    return md_table(head, rows) + "\n\n" + caption(hico, photos, bench, random_init) + "\n"


def stage_gmacs(checkpoint: Path, bench: BenchmarkReport, threads: int | None) -> str:
    """Per-stage table of every benchmarked backend: median ms and achieved GMAC/s next to the CPU's INT8
    peak (ISA bound and an ideal INT8 MatMul's), MACs counted on the exported networks (``bench_stages.py``)."""
    import os

    from hoi_edge.weights.checkpoint import load_model

    macs = unit_macs(load_model(checkpoint))
    rows = {e.label: {u: e.latency.stages[u].median_ms / 1000.0 for u in UNITS if u in e.latency.stages}
            for e in bench.entries}
    threads = threads or os.cpu_count() or 1
    peak, caption = peak_caption(threads, measured_int8_peak(threads))
    return ("## Per stage (benchmark medians)\n\n" + stage_table(rows, macs, peak) + "\n\nMACs per call: "
            + ", ".join(f"{u} {macs[u] / 1e9:.2f} G" for u in UNITS) + f"; {caption}\n")


def agreement_cell(g) -> str:
    """Top-k overlap, or n/a when the reference found no triplet (agreeing on nothing proves nothing)."""
    if g is None:
        return "ref"
    return "n/a" if g.reference_triplets == 0 else f"{g.topk_overlap:.3f}"


def caption(hico: ValidationReport, photos: ValidationReport, bench: BenchmarkReport, random_init: bool) -> str:
    """Where and how the numbers were measured: CPU, threads, runs, data and the versions that ran."""
    env, s, k = bench.environment, bench.settings, photos.settings["top_k"]
    targets = {"pytorch"} | {e.spec.target for e in bench.entries}
    wanted = ["hoi-edge", "torch", *runtime_packages(tuple(targets)), "numpy",
              "opencv-python-headless"]
    versions = ", ".join(f"{name} {env['versions'][name]}" for name in wanted if env["versions"].get(name))
    accuracy = ("random-init checkpoint, so no mAP columns (0 for every backend)" if random_init else
                f"mAP on {hico.dataset['num_images']} HICO-DET test images")
    return (f"{env['cpu']} ({env['logical_cpus']} logical CPUs; {env.get('isa', 'ISA not recorded')}), "
            f"{s['threads']} threads per backend, reference on "
            f"{s['device']}, artifacts on the CPU; latency: {s['runs']} timed runs cycling "
            f"{bench.images['num_images']} photos after {s['warmup']} warm-up runs; top-{k} agreement with the "
            f"reference on {photos.dataset['num_images']} photos; {accuracy}; Peak RSS: high-water mark of a fresh "
            f"process per backend, (+model) above its RSS after importing its runtime; Python {env['python']}, "
            f"{versions}.")


def main(argv: list[str] | None = None) -> int:
    from hoi_edge.core.noise import configure

    configure()                 # third-party log noise (NNCF INFO, tracer warnings) hidden, as in the CLI
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="checkpoint (default: the tiny random test model)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hoi-edge-bench-runtimes",
                    help="folder for the checkpoint, artifacts and reports")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma-separated subset of " + ",".join(ALL_TARGETS))
    ap.add_argument("--precisions", default=None, help="comma-separated subset of fp32,fp16,int8 (default: all)")
    ap.add_argument("--random-preset", default=None,
                    help="benchmark a random-init model of this preset (e.g. clip4hoi-base) instead of --model")
    ap.add_argument("--hico", type=Path, default=SHARED / "hicodet" / "real_test_images" / "annotations.json",
                    help="HICO-format GT json (images beside it)")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos", help="unlabelled photos (agreement, latency)")
    ap.add_argument("--calib", type=Path, default=SHARED / "photos", help="INT8 calibration images")
    ap.add_argument("--calib-size", type=int, default=300)
    ap.add_argument("--threads", type=int, default=None, help="threads per backend (default: all available CPUs)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=42, help="timed benchmark runs per backend (cycling the photos)")
    ap.add_argument("--validate-runs", type=int, default=20,
                    help="at least this many timed runs per backend in the two validate passes (whole passes)")
    ap.add_argument("--device", default="cpu", help="reference device: cpu (default: CPU vs CPU ratios), cuda or auto")
    ap.add_argument("--max-map-drop", type=float, default=1.0)
    ap.add_argument("--reuse", action="store_true", help="keep artifacts already exported from this checkpoint")
    args = ap.parse_args(argv)

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - set(ALL_TARGETS)
    if unknown:
        ap.error(f"unknown targets {sorted(unknown)}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.random_preset:
        checkpoint = random_checkpoint(args.work, args.random_preset)
    else:
        checkpoint = args.model or tiny_checkpoint(args.work)
    print(f"checkpoint: {checkpoint}" + ("" if args.model else " (random init: mAP and agreement are meaningless)"))
    precisions = [p.strip() for p in args.precisions.split(",")] if args.precisions else None
    artifacts = [folder for folder, _ in export_all(checkpoint, args.work, targets, args.calib, args.calib_size,
                                                    args.reuse, precisions)]
    common = dict(reference=checkpoint, artifacts=artifacts, warmup=args.warmup, runs=args.validate_runs,
                  threads=args.threads,
                  device=args.device,
                  # a random-init model finds nothing: latency is the point of those runs, not agreement
                  thresholds=Thresholds(max_map_drop=args.max_map_drop,
                                        allow_empty_reference=args.model is None or bool(args.random_preset)))
    hico = validate(ValidateConfig(data=args.hico, out=args.work / "validation-hico", **common))
    photos = validate(ValidateConfig(data=args.photos, out=args.work / "validation-photos", **common))
    print("\n## HICO-DET images (ground truth)\n")
    print(hico.to_markdown())
    print("## Photos (agreement only)\n")
    print(photos.to_markdown())
    bench = benchmark(BenchmarkConfig(images=args.photos, reference=checkpoint, artifacts=artifacts,
                                      warmup=args.warmup, runs=args.runs, threads=args.threads, device=args.device))
    (args.work / "benchmark.json").write_text(bench.to_json())
    print("## Benchmark (photos)\n")
    print(bench.to_markdown())
    table = readme_table(hico, photos, bench, random_init=args.model is None or bool(args.random_preset))
    if bench.noisy:       # a busy machine gave 59-99x "speed-ups" once: such numbers are not for the README
        print("## README table: NOT paste-ready, re-run on a quiet machine\n")
        print("\n".join(f"- {reason}" for reason in bench.noisy) + "\n")
        print("(for inspection only)\n")
        print(table)
    else:
        print("## README table (paste verbatim)\n")
        print(table)
    print(stage_gmacs(checkpoint, bench, args.threads))
    print(f"reports: {args.work / 'validation-hico'}, {args.work / 'validation-photos'}, "
          f"{args.work / 'benchmark.json'}")
    return 0 if hico.passed and photos.passed else 3


if __name__ == "__main__":
    sys.exit(main())
