"""``hoi-edge`` command line: a thin layer over the Python API; every user error is one clear line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hoi_edge import __version__
from hoi_edge.cli_options import (
    DEFAULT_MODEL,
    artifact_option,
    device_option,
    model_option,
    vocab_option,
    weights_options,
)
from hoi_edge.clickutil import InterruptibleGroup, SuggestingChoice, examples, friendly_errors
from hoi_edge.targets_registry import all_precisions, target_names


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=examples("hoi-edge detect photo.jpg", "hoi-edge detect photos/ --json preds.jsonl",
                             "hoi-edge export --target openvino --int8 --calib photos/ --out ov-int8",
                             "hoi-edge detect camera:0 --artifact ov-int8"))
@click.version_option(__version__, prog_name="hoi-edge")
@click.option("-v", "--verbose", is_flag=True,
              help="Show third-party log output (NNCF, ExecuTorch, PyTorch, OpenCV/FFmpeg) hidden by default.")
def main(verbose: bool) -> None:
    """Zero-shot human-object interaction detection (CLIP4HOI) for edge devices."""
    from hoi_edge.core.noise import configure

    configure(verbose)


@main.command(epilog=examples(
    "hoi-edge detect photo.jpg                                  # default model, writes photo_hoi.jpg",
    "hoi-edge detect photos/ --json preds.jsonl --no-draw       # a folder: one JSON line per image",
    "hoi-edge detect 'shots/*.png' --out annotated/ --fail-fast",
    "hoi-edge detect clip.mp4 --artifact ov-int8 --device GPU",
    "hoi-edge detect rtsp://camera/stream --artifact ov-int8 --drop-frames"))
@click.argument("source")
@model_option
@artifact_option()
@vocab_option()
@weights_options
@click.option("--out", type=click.Path(), default=None,
              help="Annotated image or video to write; a folder for a folder or glob of images "
                   "[default: <name>_hoi.<ext> in the working directory].")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write detections as JSON lines, one {image, detections} line per image or frame as it "
                   "finishes: the prediction format 'hoi-edge eval --pred' reads.")
@click.option("--no-draw", is_flag=True, help="Write no annotated image/video (with --json only the detections).")
@click.option("--top", default=10, show_default=True, help="Triplets drawn and printed per frame.")
@click.option("--min-score", default=0.0, show_default=True, help="Hide triplets below this score.")
@click.option("--max-frames", type=int, default=None, help="Stop a video/camera after N frames.")
@device_option
@click.option("--sync", "sync", is_flag=True,
              help="Video/camera: run one frame at a time instead of the pipelined stream (same detections).")
@click.option("--drop-frames", is_flag=True,
              help="Camera/stream: when the pipeline falls behind, skip to the newest frame (reports how many "
                   "were dropped) instead of queueing.")
@click.option("--fail-fast", is_flag=True,
              help="Folder or glob: stop at the first image that cannot be read (default: report it, skip it, "
                   "process the others, and exit 1 at the end).")
@friendly_errors
def detect(source: str, model: str | None, artifact: str | None, vocab: str | None, clip_weights: str | None,
           detector_weights: str | None, out: str | None, json_out: str | None, no_draw: bool, top: int,
           min_score: float, max_frames: int | None, device: str | None, sync: bool, drop_frames: bool,
           fail_fast: bool) -> None:
    """Detect HOIs in SOURCE: an image, a folder or glob ('photos/*.jpg') of images, a video file,
    'camera:N' or a stream URL (rtsp://..., http://.../video.mjpg); draws the kept instances and the best
    triplets."""
    from hoi_edge.data.sources import Source
    from hoi_edge.loader import open_detector
    from hoi_edge.pipeline.detect import DetectOptions, check_outputs, image_list, run_detect

    images = image_list(source)
    single = images is None and Source.parse(source).kind == "image"   # a bad SOURCE fails before a model loads
    live = images is None and Source.parse(source).live
    opts = DetectOptions(out=out, json_out=json_out, top=top, min_score=min_score, max_frames=max_frames,
                         draw=not no_draw, pipeline=not sync, drop_frames=drop_frames, fail_fast=fail_fast)
    check_outputs(source, opts)                 # an unwritable --out / --json fails now, not after the run
    streaming = images is None and not single and not sync
    detector = open_detector(model=model, artifact=artifact, vocabulary=vocab, clip_weights=clip_weights,
                             detector_weights=detector_weights, device=device, throughput=streaming)
    results = run_detect(detector, source, opts)
    done = 0
    try:
        for result in results:
            done = result.position
            if result.error is not None:
                click.echo(f"skipped: {_failure(*opts.failed[-1])}", err=True)     # on its own line: file, reason
            elif single:
                _echo_listing(result, top, min_score)
            else:
                click.echo(_summary_line(result, top, min_score))
    except KeyboardInterrupt:
        results.close()          # finishes the outputs: JSON lines so far and a camera recording are kept
        if not live:
            click.echo(f"interrupted after {done} of {_count(images, opts)}; finished results kept"
                       + (f": {_written(opts)}" if opts.written else ""), err=True)
            raise
        click.echo("stopped")
    if opts.drop_frames or opts.source_stats.reconnects:
        from hoi_edge.pipeline.stream import describe

        click.echo(describe(opts.stream_stats) + (f"; the stream reconnected {opts.source_stats.reconnects} time(s)"
                                                  if opts.source_stats.reconnects else ""))
    if opts.written:
        click.echo(f"wrote {_written(opts)}")
    if opts.failed:
        raise click.ClickException(f"{len(opts.failed)} of {len(images or ())} images could not be read (listed "
                                   f"above as 'skipped'); the other {len(images or ()) - len(opts.failed)} were "
                                   "processed")


def _failure(path: str, reason: str) -> str:
    """'photos/b.jpg: reason', naming the file once."""
    return reason if path in reason else f"{path}: {reason}"


def _count(images, opts) -> str:
    return f"{len(images)} images" if images is not None else f"{opts.stream_stats.frames_read} frames read"


def _written(opts) -> str:
    shown = [str(p) for p in opts.written[:5]]
    more = f" and {len(opts.written) - 5} more" if len(opts.written) > 5 else ""
    return f"{', '.join(shown)}{more}"


def _triplet(d) -> str:
    from hoi_edge.pipeline.draw import format_score

    return f"{format_score(d.score)} {d.verb.replace('_', ' ')} {d.object_label}"


def _echo_listing(result, top: int, min_score: float) -> None:
    """One image: a header line, then the best triplets one per line with their boxes."""
    shown = [d for d in result.detections if d.score >= min_score][:top]
    click.echo(f"{result.name}: {len(result.detections)} HOI triplets" + (" (top shown)" if shown else ""))
    for d in shown:
        click.echo(f"  {_triplet(d)}  human={_box(d.human_box)} object={_box(d.object_box)}")


def _summary_line(result, top: int, min_score: float) -> str:
    """A folder's image or a video's frame: one line with a progress counter and the best triplet."""
    counter = f"[{result.position}/{result.total}]" if result.total else f"[{result.position}]"
    shown = [d for d in result.detections if d.score >= min_score][:top]
    best = f", best {_triplet(shown[0])}" if shown else ""
    return f"{counter} {result.name}: {len(result.detections)} HOI triplets{best}"


@main.command(epilog=examples(
    "hoi-edge export --target openvino --out ov-fp32",
    "hoi-edge export --target openvino --int8 --calib photos/ --out ov-int8",
    "hoi-edge export --target onnx --int8 --calib hico/annotations.json --calib-images-dir hico/images --out onnx8",
    "hoi-edge export --target executorch --model runs/train/last.pt --out et-fp32 --end-to-end"))
@click.option("--target", required=True, type=SuggestingChoice(target_names),
              help="Export target (registered in hoi_edge/targets_registry.py).")
@model_option
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Artifact folder to create.")
@click.option("--precision", type=SuggestingChoice(all_precisions), default=None,
              help="Precision of the networks  [default: fp32]")
@click.option("--int8", is_flag=True, help="Shorthand for --precision int8.")
@click.option("--calib", type=click.Path(exists=False), default=None,
              help="Calibration images for INT8: a folder of images or a HICO-format annotation json.")
@click.option("--calib-images-dir", type=click.Path(file_okay=False), default=None,
              help="Images folder when --calib is a HICO json whose images are elsewhere.")
@click.option("--calib-size", default=300, show_default=True, help="Calibration subset size.")
@click.option("--val", type=click.Path(), default=None,
              help="Validation images: enables accuracy-aware INT8 with --max-drop (layers return to FP until "
                   "each unit's task metric is within --max-drop of FP32).")
@click.option("--max-drop", type=float, default=None,
              help="Accuracy-aware INT8 (with --val): allowed drop of each unit's task metric, a fraction (detector: "
                   "box AP50 against FP32; HOI head: pair-score top-5 agreement; CLIP: output cosine) "
                   "[default with --val: 0.01].")
@click.option("--int8-cpu", type=click.Choice(["any", "vnni"]), default="any", show_default=True,
              help="CPUs the INT8 artifact must be exact on: 'any' uses 7-bit weights (NNCF OverflowFix) so CPUs "
                   "without VNNI (AVX2) do not saturate; 'vnni' keeps 8-bit weights for VNNI/AMX/ARM-only use.")
@click.option("--quantize-all", is_flag=True, help="Also quantize the sensitive final projections/heads.")
@click.option("--distill-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="INT8: fine-tune the fake-quantized units for N steps against the FP32 model's outputs "
                   "(quantization-aware distillation; NNCF QAT for OpenVINO/ONNX, PT2E QAT for ExecuTorch); "
                   "0 = post-training quantization only.")
@click.option("--distill-lr", type=float, default=1e-5, show_default=True, help="Learning rate of --distill-steps.")
@vocab_option()
@weights_options
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (atomically).")
@click.option("--end-to-end", "end_to_end", is_flag=True,
              help="One network: image in, HOI triplets out (for apps without hoi-edge's NumPy glue). The image "
                   "is prepared as the detector family does it: letterboxed for DETR, stretched to a square for "
                   "NanoDet; I/O contract in the manifest and docs/export.md.")
@friendly_errors
def export(target: str, model: str | None, out: str, precision: str | None, int8: bool, calib: str | None,
           calib_images_dir: str | None, calib_size: int, val: str | None, max_drop: float | None, int8_cpu: str,
           quantize_all: bool, distill_steps: int, distill_lr: float, vocab: str | None, clip_weights: str | None,
           detector_weights: str | None, overwrite: bool, end_to_end: bool) -> None:
    """Export the model to an edge artifact folder (three networks + baked text embeddings + manifest)."""
    from compress.calibration import CalibrationConfig
    from compress.distill import DistillConfig
    from compress.quantize import DEFAULT_MAX_DROP, QuantizationConfig
    from hoi_edge.core.atomic import check_writable
    from hoi_edge.weights.defaults import resolve_checkpoint
    from targets.export import ExportConfig, check_config, export_artifact

    if int8 and precision not in (None, "int8"):
        raise click.UsageError(f"--int8 means --precision int8, but --precision {precision} was given: choose one")
    precision = "int8" if int8 else (precision or "fp32")
    images_dir = Path(calib_images_dir) if calib_images_dir else None
    if val and max_drop is None:
        max_drop = DEFAULT_MAX_DROP
    cfg = ExportConfig(
        checkpoint=model or DEFAULT_MODEL, target=target, out=Path(out), precision=precision, vocabulary=vocab,
        calibration=CalibrationConfig(Path(calib), max_images=calib_size, images_dir=images_dir) if calib else None,
        validation=CalibrationConfig(Path(val), max_images=calib_size, role="validation") if val else None,
        quantization=QuantizationConfig(subset_size=calib_size, keep_sensitive_fp=not quantize_all, max_drop=max_drop,
                                        target_cpu=int8_cpu),
        distill=DistillConfig(steps=distill_steps, lr=distill_lr) if distill_steps else None,
        overwrite=overwrite, end_to_end=end_to_end,
    )
    checked = check_config(cfg)    # option errors first: resolving 'default' may build or download a model
    check_writable(cfg.out, "--out")
    cfg.checkpoint = str(resolve_checkpoint(model, clip_weights, detector_weights))
    path = export_artifact(cfg, checked=checked)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    click.echo(f"wrote {target}/{precision} artifact to {path} ({size:.1f} MiB)")


@main.command(epilog=examples("hoi-edge bake --artifact ov-int8 --vocab kitchen.json",
                              "hoi-edge bake --artifact ov-int8 --model runs/train/last.pt --vocab hico"))
@artifact_option(required=True)
@model_option
@vocab_option(required=True)
@friendly_errors
def bake(artifact: str, model: str | None, vocab: str) -> None:
    """Re-bake an artifact's text embeddings for another vocabulary (no re-export of the networks). --model is
    the checkpoint the artifact was exported from."""
    from compress.bake import rebake_artifact
    from hoi_edge.data.vocabulary import load_vocabulary

    manifest = rebake_artifact(artifact, model or DEFAULT_MODEL, vocab)
    baked = load_vocabulary(vocab)
    click.echo(f"re-baked {artifact} for vocabulary '{baked.name}' ({baked.num_classes} classes, "
               f"{len(baked.verbs)} verbs, {len(baked.objects)} objects; fingerprint {manifest.vocabulary_fingerprint})")


@main.command(epilog=examples("hoi-edge verify --artifact ov-int8"))
@artifact_option(required=True, legacy_positional=True)
@friendly_errors
def verify(artifact: str) -> None:
    """Check every file of an artifact folder against the sha256 its manifest records (also done on load)."""
    from hoi_edge.targets_registry import read_manifest

    manifest, _ = read_manifest(artifact)
    if manifest.files is None:
        raise click.ClickException(f"{artifact}: manifest format {manifest.format_version} records no file hashes "
                                   "(re-export to get them); nothing to verify")
    manifest.verify_files(artifact)
    click.echo(f"{artifact}: {len(manifest.files)} files match the manifest")


def _box(b) -> str:
    return "[" + ",".join(f"{v:.0f}" for v in b) + "]"


def _register_commands() -> None:
    """Commands that live beside their libraries (evaluator, validator, training)."""
    from hoi_edge.eval.cli import eval_command
    from hoi_edge.serve.cli import serve_command
    from hoi_edge.validate.cli import benchmark_command, validate_command
    from hoi_edge.weights.cli import weights_group
    from train.cli import train_command
    from train.student_cli import distill_command

    main.add_command(eval_command, "eval")
    main.add_command(validate_command, "validate")
    main.add_command(benchmark_command, "benchmark")
    main.add_command(train_command, "train")
    main.add_command(distill_command, "distill")
    main.add_command(weights_group, "weights")
    main.add_command(serve_command, "serve")


_register_commands()

if __name__ == "__main__":
    sys.exit(main())
