"""``hoi-edge validate`` and ``hoi-edge benchmark``: thin click layers over :func:`validate` and
:func:`benchmark`. Exit codes of ``validate``: 0 passed, 1 error (bad input), 3 a threshold failed."""

from __future__ import annotations

from pathlib import Path

import click

from hoi_edge.clickutil import friendly_errors

_DIR = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)
THRESHOLD_EXIT_CODE = 3


class ThresholdFailed(click.ClickException):
    """An artifact exceeded --max-map-drop or fell below --min-agreement (the report is still written)."""

    exit_code = THRESHOLD_EXIT_CODE


def _artifact_options(fn):
    """Artifact folders after ``--artifacts`` (``--artifacts a b c``), repeated, or as plain arguments."""
    fn = click.argument("artifact_dirs", nargs=-1, type=_DIR, metavar="[ARTIFACT_DIR]...")(fn)
    return click.option("--artifacts", "artifacts", multiple=True, type=_DIR,
                        help="Artifact folder(s); several may follow one --artifacts, or repeat it.")(fn)


def _common_options(fn):
    fn = click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
                      help="Untimed runs per backend before timing.")(fn)
    fn = click.option("--threads", type=click.IntRange(min=1), default=None,
                      help="Thread count applied to every backend (default: all CPUs this process may use).")(fn)
    return click.option("--quiet", is_flag=True, help="No progress bars.")(fn)


@click.command("validate")
@_artifact_options
@click.option("--reference", required=True, type=_FILE,
              help="Full-precision hoi-edge checkpoint (.pt) the artifacts were exported from.")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="HICO-format annotation json (mAP + agreement) or a folder of images (agreement only).")
@click.option("--images", type=_DIR, default=None, help="Images folder when --data is a json kept elsewhere.")
@click.option("--split", default=None, help="Zero-shot split (rf-uc, nf-uc, uo, uv): also Unseen / Seen mAP.")
@click.option("--splits", type=_FILE, default=None,
              help="splits.json for --split (default: beside --data, else the vocabulary's own splits).")
@click.option("--max-map-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Fail when an artifact's mAP (Full, or Unseen with --split) drops more points than this.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Fail when an artifact's top-k agreement with the reference is below this (0-1).")
@click.option("--out", type=_DIR, default=None,
              help="Write report.json, report.md, accuracy_latency.png and predictions/ here.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N images.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Triplets per image compared for agreement.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Device of the PyTorch reference (artifacts run on the CPU; use cpu for like-for-like speed-ups).")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True,
              help="At least this many timed runs per backend: whole timed passes over the images are repeated "
                   "until reached (one pass when there are this many images). Accuracy uses the first pass.")
@_common_options
@friendly_errors
def validate_command(artifact_dirs, artifacts, reference, data, images, split, splits, max_map_drop, min_agreement,
                     out, limit, top_k, device, runs, warmup, threads, quiet) -> None:
    """Compare exported artifacts with the PyTorch reference: mAP drop, agreement, latency, memory, size."""
    from hoi_edge.validate.report import Thresholds
    from hoi_edge.validate.validator import REPORT_JSON, ValidateConfig, validate

    folders = list(artifacts) + list(artifact_dirs)
    report = validate(ValidateConfig(
        reference=reference, artifacts=folders, data=data, images=images, split=split, splits=splits,
        thresholds=Thresholds(max_map_drop=max_map_drop, min_agreement=min_agreement), out=out, limit=limit,
        warmup=warmup, runs=runs, threads=threads, device=device, top_k=top_k, progress=not quiet,
    ))
    click.echo(report.to_markdown())
    if out is not None:
        click.echo(f"wrote {out / REPORT_JSON}, report.md, accuracy_latency.png and predictions/ in {out}")
    if not report.passed:
        raise ThresholdFailed("validation failed: " + "; ".join(report.failures))
    click.echo(f"validation passed: {len(report.artifacts)} artifact(s) within the thresholds")


@click.command("benchmark")
@_artifact_options
@click.option("--reference", type=_FILE, default=None, help="PyTorch checkpoint to compare against (the baseline).")
@click.option("--images", required=True, type=click.Path(path_type=Path), help="Folder of images to time on.")
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed runs per backend (cycling through the images).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True,
              help="Device of the PyTorch reference (artifacts run on the CPU; cuda makes ratios GPU vs CPU).")
@click.option("--json", "json_out", type=_FILE, default=None, help="Also write the results as JSON here.")
@_common_options
@friendly_errors
def benchmark_command(artifact_dirs, artifacts, reference, images, runs, device, json_out, warmup, threads,
                      quiet) -> None:
    """Latency, throughput, peak memory and size of the reference and artifacts, with speed ratios."""
    from hoi_edge.atomic import atomic_output
    from hoi_edge.validate.benchmarking import BenchmarkConfig, benchmark

    report = benchmark(BenchmarkConfig(images=images, reference=reference,
                                       artifacts=list(artifacts) + list(artifact_dirs), warmup=warmup, runs=runs,
                                       threads=threads, device=device, progress=not quiet))
    click.echo(report.to_markdown())
    if json_out is not None:
        with atomic_output(json_out) as tmp:
            tmp.write_text(report.to_json())
        click.echo(f"wrote {json_out}")
