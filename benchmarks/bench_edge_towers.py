"""The edge preset's CLIP image tower, chosen by measurement: every candidate's INT8 latency on every target.

    python benchmarks/bench_edge_towers.py --threads 2 --runs 28          # the timed candidates, all targets
    python benchmarks/bench_edge_towers.py --towers vit-b-32,mobileclip2-s0 --targets openvino --runs 7

Each candidate (``hoi_edge.model.config.EDGE_TOWERS``) is the whole ``clip4hoi-edge`` model with that tower:
NanoDet-g (its real weights, npm), the tower with random weights (no CLIP weights exist offline; latency does
not depend on them) and the slim HOI head. Every candidate is exported INT8 to every target (calibrated on the
photos), then, target by target, all candidates are timed interleaved run by run (``hoi-edge benchmark``, a
fresh process each, ``--threads`` threads) on the same photos: the table gives the CLIP image stage and the
whole frame (decoded image in, triplets out), median ms. MACs are counted on the exported networks.
Candidates left out of ``--towers`` still get a row with their MACs ("not timed"): by default the two with more than
twice the CLIP MACs of the cheapest candidate (ViT-B/16 at 160 px, MobileCLIP-S2), to save export time; name them in
``--towers`` to time them too.
Prints the table and its caption (CPU, ISA, threads, runs) paste-ready; a noisy machine is said so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import chosen_targets, export_all, print_table, random_checkpoint, timed_export_args  # noqa: E402

from hoi_edge.model.config import EDGE_TOWER, EDGE_TOWERS, clip4hoi_edge  # noqa: E402
from hoi_edge.validate import BenchmarkConfig, benchmark  # noqa: E402
from hoi_edge.validate.environment import cpu_line  # noqa: E402
from hoi_edge.validate.markdown import md_table  # noqa: E402

TIMED = ("vit-b-32", "mobileclip2-s0", "vit-b-16-112", "mobileclip-s1")     # default --towers


def tower_facts(checkpoint: Path) -> dict[str, str]:
    """Input side, patch tokens and GMACs of the CLIP image unit (and of the whole frame's networks)."""
    from stage_facts import unit_macs

    from hoi_edge.runtime.torch_runner import pipeline_spec
    from hoi_edge.weights.checkpoint import load_model
    from targets.contract import unit_contracts

    model = load_model(checkpoint)
    spec = pipeline_spec(model)
    macs = unit_macs(model)
    tokens = unit_contracts(model, spec)["hoi_head"].inputs["patches"][1]
    return {"input": f"{spec.clip_size}", "tokens": str(tokens), "clip_gmac": f"{macs['clip_image'] / 1e9:.2f}",
            "frame_gmac": f"{sum(macs.values()) / 1e9:.2f}"}


def main(argv: list[str] | None = None) -> int:
    from hoi_edge.core.noise import configure

    configure()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--towers", default=",".join(TIMED), help="the candidates to export and time, a comma-separated "
                    "subset of " + ",".join(EDGE_TOWERS) + " (the others get their MACs only)")
    timed_export_args(ap, Path("/tmp/hoi-edge-edge-towers"))
    args = ap.parse_args(argv)
    targets = chosen_targets(ap, args)
    towers = [t.strip() for t in args.towers.split(",") if t.strip()]
    if unknown := set(towers) - set(EDGE_TOWERS):
        ap.error(f"unknown towers {sorted(unknown)}")
    args.work.mkdir(parents=True, exist_ok=True)

    checkpoints = {t: random_checkpoint(args.work, "clip4hoi-edge", clip4hoi_edge(t), name=f"edge-{t}")
                   for t in EDGE_TOWERS}
    facts = {t: tower_facts(c) for t, c in checkpoints.items()}
    checkpoints = {t: checkpoints[t] for t in towers}
    artifacts = {(tower, target): folder for tower, ckpt in checkpoints.items()
                 for (folder, _), target in zip(export_all(ckpt, args.work / tower, targets, args.photos,
                                                           args.calib_size, args.reuse, ["int8"]), targets)}
    ms: dict[tuple[str, str], tuple[float, float]] = {}
    notes, env = [], {}
    for target in targets:           # candidates interleaved run by run, one target at a time (memory)
        report = benchmark(BenchmarkConfig(images=args.photos, artifacts=[artifacts[t, target] for t in towers],
                                           warmup=args.warmup, runs=args.runs, threads=args.threads, progress=False))
        env = report.environment
        notes += [f"{target}: {reason}" for reason in report.noisy]
        for tower, entry in zip(towers, report.entries):
            ms[tower, target] = (entry.latency.stages["clip_image"].median_ms, entry.latency.median_ms)
    head = ["Image tower", "Input px", "Patch tokens", "CLIP GMAC", "Frame GMAC",
            *[f"{t} INT8 {what} ms" for t in targets for what in ("CLIP", "frame")]]
    rows = [[f"**{t}** (chosen)" if t == EDGE_TOWER else t, facts[t]["input"], facts[t]["tokens"],
             facts[t]["clip_gmac"], facts[t]["frame_gmac"],
             *([f"{v:.1f}" for target in targets for v in ms[t, target]] if t in towers
               else ["not timed"] * 2 * len(targets))] for t in EDGE_TOWERS]
    print_table("Edge image-tower candidates (INT8)", notes, md_table(head, rows))
    print(f"\nclip4hoi-edge with each candidate tower (random weights: no CLIP weights offline, latency does not "
          f"depend on them), NanoDet-g (real weights) and the slim HOI head; INT8 artifacts calibrated on "
          f"{args.calib_size} photos; median of {args.runs} timed runs after {args.warmup} warm-up runs cycling the "
          f"photos, candidates interleaved run by run per target, {args.threads} threads each; CLIP = the clip_image "
          f"stage, frame = decoded image in, triplets out. {cpu_line(env)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
