"""``hoi-edge validate`` and ``hoi-edge benchmark``: thin click layers over :func:`validate` and
:func:`benchmark`. Exit codes of ``validate``: 0 passed, 1 error (bad input), 3 a threshold failed."""

from __future__ import annotations

from pathlib import Path

import click

from hoi_edge.cli_options import DEFAULT_MODEL, artifact_option, device_option, model_option, split_options
from hoi_edge.clickutil import SuggestingChoice, deprecated_alias, examples, friendly_errors

_DIR = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)
THRESHOLD_EXIT_CODE = 3


class ThresholdFailed(click.ClickException):
    """An artifact exceeded --max-map-drop or fell below --min-agreement (the report is still written)."""

    exit_code = THRESHOLD_EXIT_CODE


def reference_device_option(default: str):
    """``--reference-device``: where the PyTorch reference runs (validate and benchmark compare against it)."""
    return click.option("--reference-device", "reference_device", type=SuggestingChoice(["auto", "cpu", "cuda"]),
                        default=default, show_default=True,
                        help="Device of the PyTorch reference (cpu for like-for-like speed-ups; cuda makes ratios "
                             "GPU vs CPU).")


def _compared_models(fn):
    """The artifacts (``--artifact``, repeated) and the PyTorch reference they are compared with (``--model``)."""
    fn = deprecated_alias("--reference", "--model", "model")(fn)
    return artifact_option(multiple=True, legacy_positional=True)(model_option(fn))


def _common_options(fn):
    fn = click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
                      help="Untimed runs per backend before timing.")(fn)
    fn = click.option("--threads", type=click.IntRange(min=1), default=None,
                      help="Thread count applied to every backend (default: all CPUs this process may use).")(fn)
    return click.option("--quiet", is_flag=True, help="No progress bars.")(fn)


@click.command("validate", epilog=examples(
    "hoi-edge validate --data hico/annotations.json --artifact ov-int8 --artifact onnx-int8",
    "hoi-edge validate --model model.pt --data photos/ --artifact ov-int8 --reference-device cpu   # no GT",
    "hoi-edge validate --data hico/annotations.json --split rf-uc --artifact ov-int8 --max-map-drop 0.5 --out rep/"))
@_compared_models
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="HICO-format annotation json (mAP + agreement) or a folder of images (agreement only).")
@click.option("--images-dir", "images_dir", type=_DIR, default=None,
              help="Images folder when --data is a json kept elsewhere.")
@deprecated_alias("--images", "--images-dir", "images_dir", type=_DIR)
@split_options
@click.option("--max-map-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Fail when an artifact's mAP drops more points than this in Full, Rare (when the GT has rare "
                   "classes) or, with --split, Unseen or Seen.")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=None,
              help="Fail when an artifact's top-k agreement with the reference is below this (0-1).")
@click.option("--allow-empty-reference", is_flag=True,
              help="Do not fail when the reference finds no HOI triplet on any image (agreement is then n/a).")
@click.option("--allow-checkpoint-mismatch", is_flag=True,
              help="Compare artifacts exported from another checkpoint than the reference (a warning, not an error).")
@click.option("--out", type=_DIR, default=None,
              help="Write report.json, report.md, accuracy_latency.png and predictions/ here.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N images.")
@click.option("--top-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Triplets per image compared for agreement.")
@reference_device_option("auto")
@device_option
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True,
              help="At least this many timed runs per backend: whole timed passes over the images are repeated "
                   "until reached (one pass when there are this many images). Accuracy uses the first pass.")
@_common_options
@friendly_errors
def validate_command(artifact, model, data, images_dir, split, splits, max_map_drop, min_agreement,
                     allow_empty_reference, allow_checkpoint_mismatch, out, limit, top_k, reference_device, device,
                     runs, warmup, threads, quiet) -> None:
    """Compare exported artifacts with the PyTorch reference: mAP drop, agreement, latency, memory, size."""
    from hoi_edge.validate.report import Thresholds
    from hoi_edge.validate.validator import REPORT_JSON, ValidateConfig, validate

    report = validate(ValidateConfig(
        reference=model or DEFAULT_MODEL, artifacts=list(artifact), data=data, images=images_dir, split=split,
        splits=Path(splits) if splits else None,
        thresholds=Thresholds(max_map_drop=max_map_drop, min_agreement=min_agreement,
                              allow_empty_reference=allow_empty_reference,
                              allow_checkpoint_mismatch=allow_checkpoint_mismatch), out=out, limit=limit,
        warmup=warmup, runs=runs, threads=threads, device=reference_device, artifact_device=device, top_k=top_k,
        progress=not quiet,
    ))
    click.echo(report.to_markdown())
    if out is not None:
        click.echo(f"wrote {out / REPORT_JSON}, report.md, accuracy_latency.png and predictions/ in {out}")
    if not report.passed:
        raise ThresholdFailed("validation failed: " + "; ".join(report.failures))
    click.echo(f"validation passed: {len(report.artifacts)} artifact(s) within the thresholds")


@click.command("benchmark", epilog=examples(
    "hoi-edge benchmark --data photos/ --artifact ov-int8 --artifact onnx-int8 --threads 2 --runs 40",
    "hoi-edge benchmark --data photos/ --artifact ov-int8 --mode throughput --json tp.json",
    "hoi-edge benchmark --data photos/ --artifact ov-int8 --device GPU --no-reference"))
@_compared_models
@click.option("--no-reference", is_flag=True, help="Time only the artifacts (no PyTorch baseline, no speed ratios).")
@click.option("--data", "data", type=click.Path(path_type=Path), default=None, help="Folder of images to time on.")
@deprecated_alias("--images", "--data", "data", type=click.Path(path_type=Path))
@click.option("--runs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Timed runs per backend (cycling through the images).")
@reference_device_option("cpu")
@device_option
@click.option("--mode", type=SuggestingChoice(["latency", "throughput"]), default="latency", show_default=True,
              help="latency: per-image latency, memory and size. throughput: frames/s over a video-like stream "
                   "(the images cycled, --runs frames per round), synchronous next to pipelined, with "
                   "single-image latency beside it.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="--mode throughput: timed rounds per mode (the table shows median and min-max).")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="--mode throughput: frames in flight in the pipelined mode.")
@click.option("--json", "json_out", type=_FILE, default=None, help="Also write the results as JSON here.")
@_common_options
@friendly_errors
def benchmark_command(artifact, model, no_reference, data, runs, reference_device, device, mode, repeats, depth,
                      json_out, warmup, threads, quiet) -> None:
    """Latency, throughput, peak memory and size of the reference and artifacts, with speed ratios."""
    from hoi_edge.core.atomic import atomic_output, check_writable
    from hoi_edge.validate.benchmarking import BenchmarkConfig, benchmark
    from hoi_edge.weights.defaults import resolve_checkpoint

    if data is None:
        raise click.UsageError("Missing option '--data' (the folder of images to time on).")
    if json_out is not None:
        check_writable(json_out, "--json file")
    if no_reference and model is not None:
        raise click.UsageError("--no-reference and --model contradict each other; give one")
    reference = None if no_reference else resolve_checkpoint(model or DEFAULT_MODEL)
    if mode == "throughput":
        from hoi_edge.validate.throughput import ThroughputConfig, benchmark_throughput

        report = benchmark_throughput(ThroughputConfig(
            images=data, reference=reference, artifacts=list(artifact), frames=runs,
            repeats=repeats, warmup=warmup, threads=threads, device=reference_device, artifact_device=device,
            depth=depth, progress=not quiet))
    else:
        report = benchmark(BenchmarkConfig(images=data, reference=reference, artifacts=list(artifact), warmup=warmup,
                                           runs=runs, threads=threads, device=reference_device,
                                           artifact_device=device, progress=not quiet))
    click.echo(report.to_markdown())
    if json_out is not None:
        with atomic_output(json_out) as tmp:
            tmp.write_text(report.to_json())
        click.echo(f"wrote {json_out}")
