"""What several benchmarks share: the repository on ``sys.path``, the shared data folder, the checkpoints they
measure (the tiny test model, random-init presets) and exporting every target and precision from one.

Every benchmark imports this module first (``from common import ...``) and ``stage_facts`` for the per-stage
MAC and INT8-peak helpers; no benchmark script imports another (``tests/test_import_graph.py``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:            # running from a checkout without installing the package
    sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"

from hoi_edge.targets_registry import TARGETS  # noqa: E402


def cpu_caption() -> str:
    """'Measured on <CPU> (<n> logical CPUs; <ISA>).': printed beside every speed or equality number, since INT8
    speed and INT8 arithmetic both depend on the ISA (VNNI or not)."""
    from hoi_edge.validate.environment import cpu_line, environment

    return cpu_line(environment())


def tiny_checkpoint(work: Path) -> Path:
    """The test suite's tiny random-init CLIP4HOI (hoi_edge.testing), saved once into ``work``."""
    path = work / "tiny.pt"
    if not path.is_file():
        from hoi_edge.testing import make_tiny_model
        from hoi_edge.weights.checkpoint import save_checkpoint

        save_checkpoint(make_tiny_model(), path)
    return path


def random_checkpoint(work: Path, preset: str, config=None, name: str | None = None) -> Path:
    """A random-init checkpoint of ``preset`` (or of ``config``, a ModelConfig, saved as ``name``): no CLIP weights
    are downloaded (a named detector source, such as NanoDet-g from npm, is kept). Sizes and latencies depend only
    on the architecture, so this measures a model's speed on a machine without its pretrained weights."""
    path = work / f"{name or preset}-random.pt"
    if not path.is_file():
        import dataclasses

        import torch

        from hoi_edge.data.vocabulary import load_vocabulary
        from hoi_edge.model.config import PRESETS
        from hoi_edge.weights.checkpoint import build_model, save_checkpoint

        torch.manual_seed(0)
        cfg = config if config is not None else PRESETS[preset]()
        tower = dataclasses.replace(cfg.clip.image_tower, pretrained=None)
        cfg = dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, pretrained=None, image_tower=tower))
        save_checkpoint(build_model(cfg, load_vocabulary("hico")), path)
    return path


def timed_export_args(ap, work: Path) -> None:
    """The options of a benchmark that exports random-init checkpoints and times the artifacts on the photos:
    ``--targets`` (comma-separated), ``--work``, ``--photos``, ``--calib-size``, ``--threads``, ``--warmup``,
    ``--runs``, ``--reuse``; :func:`chosen_targets` reads ``--targets`` back."""
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated subset of " + ",".join(TARGETS))
    ap.add_argument("--work", type=Path, default=work, help="folder for the checkpoints, artifacts and reports")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos", help="timing images (and INT8 calibration)")
    ap.add_argument("--calib-size", type=int, default=14, help="INT8 calibration images")
    ap.add_argument("--threads", type=int, default=2, help="threads per backend")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=28, help="timed runs per artifact")
    ap.add_argument("--reuse", action="store_true", help="keep artifacts already exported from the checkpoints")


def print_table(title: str, noisy: list[str], table: str) -> None:
    """A table under its title, or, when the machine was too noisy to publish it, under a title that says so and
    the reasons."""
    print(f"## {title}" + (": NOT paste-ready, re-run on a quiet machine\n" if noisy else "\n"))
    if noisy:
        print("\n".join(f"- {n}" for n in noisy) + "\n")
    print(table)


def chosen_targets(ap, args) -> list[str]:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if unknown := set(targets) - set(TARGETS):
        ap.error(f"unknown targets {sorted(unknown)}")
    return targets


def export_all(checkpoint: Path, work: Path, targets: list[str], calib: Path, calib_size: int,
               reuse: bool, precisions: list[str] | None = None) -> list[tuple[Path, float]]:
    """Every precision each target supports; ``reuse`` keeps artifacts already exported from this checkpoint."""
    from compress.calibration import CalibrationConfig
    from hoi_edge.runtime.manifest import Manifest
    from hoi_edge.weights.checkpoint import file_sha256
    from targets.export import ExportConfig, export_artifact

    sha = file_sha256(checkpoint)
    out: list[tuple[Path, float]] = []
    for target in targets:
        for precision in TARGETS[target].precisions:
            if precisions and precision not in precisions:
                continue
            folder = work / "artifacts" / f"{target}-{precision}"
            if reuse and folder.is_dir():
                try:
                    if Manifest.read(folder).source_checkpoint.get("sha256") == sha:
                        print(f"reusing {folder}")
                        out.append((folder, float("nan")))
                        continue
                except Exception:  # unreadable leftover: export again
                    pass
            start = time.perf_counter()
            export_artifact(ExportConfig(
                checkpoint=checkpoint, target=target, out=folder, precision=precision, overwrite=True,
                calibration=CalibrationConfig(calib, max_images=calib_size) if precision == "int8" else None))
            out.append((folder, time.perf_counter() - start))
            print(f"exported {target}/{precision} in {out[-1][1]:.1f} s -> {folder}")
    return out
