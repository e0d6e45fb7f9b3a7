"""``hoi-edge`` command line: a thin layer over the Python API; every user error is one clear line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hoi_edge import __version__
from hoi_edge.clickutil import SuggestingChoice, friendly_errors
from hoi_edge.targets_registry import all_precisions, target_names


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hoi-edge")
@click.option("-v", "--verbose", is_flag=True,
              help="Show third-party log output (NNCF, ExecuTorch, PyTorch warnings) hidden by default.")
def main(verbose: bool) -> None:
    """Zero-shot human-object interaction detection (CLIP4HOI) for edge devices."""
    from hoi_edge.core.noise import configure

    configure(verbose)


model_option = click.option("--model", "model", default=None,
                            help="hoi-edge checkpoint (.pt), or 'default' for the default model (the same one in "
                                 "every command)  [default: default]")
artifact_option = click.option("--artifact", type=click.Path(file_okay=False), default=None,
                               help="Exported artifact folder (OpenVINO / ONNX / ExecuTorch) instead of --model.")
clip_weights_option = click.option("--clip-weights", type=click.Path(dir_okay=False), default=None,
                                   help="Local open_clip ViT-B-16 weights for the default model (offline use).")
detector_weights_option = click.option("--detector-weights", type=click.Path(dir_okay=False), default=None,
                                       help="Local detector weights for the default model (offline use): DETR-R50 "
                                            "COCO (.pth), or NanoDet (official .ckpt/.pth, or a TF.js model.json); "
                                            "the file's kind picks the detector family.")
vocab_option = click.option("--vocab", default=None, help="Vocabulary: 'hico' or a JSON file (re-targets the classes).")


@main.command()
@click.argument("source")
@model_option
@artifact_option
@vocab_option
@clip_weights_option
@detector_weights_option
@click.option("--out", type=click.Path(), default=None,
              help="Annotated image or video to write; a folder for a folder or glob of images "
                   "[default: <name>_hoi.<ext> in the working directory].")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write detections as JSON lines, one {image, detections} line per image or frame: the "
                   "prediction format 'hoi-edge eval --pred' reads.")
@click.option("--no-draw", is_flag=True, help="Write no annotated image/video (with --json only the detections).")
@click.option("--top", default=10, show_default=True, help="Triplets drawn and printed per frame.")
@click.option("--min-score", default=0.0, show_default=True, help="Hide triplets below this score.")
@click.option("--max-frames", type=int, default=None, help="Stop a video/camera after N frames.")
@click.option("--device", default=None,
              help="Where the artifact runs: an OpenVINO device (CPU, GPU, GPU.1, NPU, AUTO, HETERO:GPU,CPU, "
                   "MULTI:...), ONNX Runtime providers in priority order (cuda,cpu; tensorrt:fp16:cache=DIR), "
                   "ExecuTorch xnnpack; or per unit: detector=GPU,clip_image=NPU,hoi_head=CPU. With --model: "
                   "the PyTorch device (cpu, cuda). [default: the CPU]")
@click.option("--sync", "sync", is_flag=True,
              help="Video/camera: run one frame at a time instead of the pipelined stream (same detections).")
@click.option("--drop-frames", is_flag=True,
              help="Camera/stream: when the pipeline falls behind, skip to the newest frame (reports how many "
                   "were dropped) instead of queueing.")
@friendly_errors
def detect(source: str, model: str | None, artifact: str | None, vocab: str | None, clip_weights: str | None,
           detector_weights: str | None, out: str | None, json_out: str | None, no_draw: bool, top: int,
           min_score: float, max_frames: int | None, device: str | None, sync: bool, drop_frames: bool) -> None:
    """Detect HOIs in SOURCE: an image, a folder or glob ('photos/*.jpg') of images, a video file,
    'camera:N' or a stream URL (rtsp://..., http://.../video.mjpg); draws the kept instances and the best
    triplets."""
    from hoi_edge.data.sources import Source
    from hoi_edge.loader import open_detector
    from hoi_edge.pipeline.detect import DetectOptions, check_outputs, image_list, run_detect

    live = image_list(source) is None and Source.parse(source).live   # a bad SOURCE fails before a model loads
    opts = DetectOptions(out=out, json_out=json_out, top=top, min_score=min_score, max_frames=max_frames,
                         draw=not no_draw, pipeline=not sync, drop_frames=drop_frames)
    check_outputs(source, opts)                 # an unwritable --out / --json fails now, not after the run
    streaming = image_list(source) is None and Source.parse(source).kind != "image" and not sync
    detector = open_detector(model=model, artifact=artifact, vocabulary=vocab, clip_weights=clip_weights,
                             detector_weights=detector_weights, device=device, throughput=streaming)
    results = run_detect(detector, source, opts)
    try:
        for name, dets in results:
            shown = [d for d in dets if d.score >= min_score][:top]
            click.echo(f"{name}: {len(dets)} HOI triplets" + (" (top shown)" if shown else ""))
            for d in shown:
                click.echo(f"  {d.score:.3f}  {d.verb.replace('_', ' ')} {d.object_label}"
                           f"  human={_box(d.human_box)} object={_box(d.object_box)}")
    except KeyboardInterrupt:
        results.close()          # finishes the outputs: a camera recording is kept, a half-done file is not
        if not live:
            raise
        click.echo("stopped")
    if opts.drop_frames or opts.source_stats.reconnects:
        from hoi_edge.pipeline.stream import describe

        click.echo(describe(opts.stream_stats) + (f"; the stream reconnected {opts.source_stats.reconnects} time(s)"
                                                  if opts.source_stats.reconnects else ""))
    if opts.written:
        shown = [str(p) for p in opts.written[:5]]
        more = f" and {len(opts.written) - 5} more" if len(opts.written) > 5 else ""
        click.echo(f"wrote {', '.join(shown)}{more}")


@main.command()
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
              help="Validation images: enables NNCF accuracy-aware INT8 (OpenVINO) with --max-drop.")
@click.option("--max-drop", type=float, default=None,
              help="Accuracy-aware INT8 (with --val): allowed drop of per-unit output cosine similarity "
                   "[default with --val: 0.01].")
@click.option("--quantize-all", is_flag=True, help="Also quantize the sensitive final projections/heads.")
@click.option("--distill-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="OpenVINO INT8: fine-tune the NNCF-quantized units for N steps against the FP32 model's "
                   "outputs (quantization-aware distillation); 0 = post-training quantization only.")
@click.option("--distill-lr", type=float, default=1e-5, show_default=True, help="Learning rate of --distill-steps.")
@vocab_option
@clip_weights_option
@detector_weights_option
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (atomically).")
@click.option("--end-to-end", "end_to_end", is_flag=True,
              help="One network: letterboxed image in, HOI triplets out (for apps without hoi-edge's NumPy glue; "
                   "I/O contract in the manifest and docs/export.md). DETR detectors.")
@friendly_errors
def export(target: str, model: str | None, out: str, precision: str | None, int8: bool, calib: str | None,
           calib_images_dir: str | None, calib_size: int, val: str | None, max_drop: float | None, quantize_all: bool,
           distill_steps: int, distill_lr: float, vocab: str | None, clip_weights: str | None,
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
        checkpoint=model or "default", target=target, out=Path(out), precision=precision, vocabulary=vocab,
        calibration=CalibrationConfig(Path(calib), max_images=calib_size, images_dir=images_dir) if calib else None,
        validation=CalibrationConfig(Path(val), max_images=calib_size, role="validation") if val else None,
        quantization=QuantizationConfig(subset_size=calib_size, keep_sensitive_fp=not quantize_all, max_drop=max_drop),
        distill=DistillConfig(steps=distill_steps, lr=distill_lr) if distill_steps else None,
        overwrite=overwrite, end_to_end=end_to_end,
    )
    checked = check_config(cfg)    # option errors first: resolving 'default' may build or download a model
    check_writable(cfg.out, "--out")
    cfg.checkpoint = str(resolve_checkpoint(model, clip_weights, detector_weights))
    path = export_artifact(cfg, checked=checked)
    size = sum(f.stat().st_size for f in path.iterdir()) / 2**20
    click.echo(f"wrote {target}/{precision} artifact to {path} ({size:.1f} MiB)")


@main.command()
@click.option("--artifact", required=True, type=click.Path(file_okay=False), help="Artifact folder to re-bake.")
@click.option("--model", default="default", show_default=True,
              help="The checkpoint the artifact was exported from ('default': the default model, as in export).")
@click.option("--vocab", required=True, help="New vocabulary: 'hico' or a JSON file.")
@friendly_errors
def bake(artifact: str, model: str, vocab: str) -> None:
    """Re-bake an artifact's text embeddings for another vocabulary (no re-export of the networks)."""
    from compress.bake import rebake_artifact

    manifest = rebake_artifact(artifact, model, vocab)
    click.echo(f"re-baked {artifact} for vocabulary {manifest.vocabulary_fingerprint}")


@main.command()
@click.argument("artifact", type=click.Path(file_okay=False))
@friendly_errors
def verify(artifact: str) -> None:
    """Check every file of an ARTIFACT folder against the sha256 its manifest records (also done on load)."""
    from hoi_edge.runtime.manifest import Manifest

    manifest = Manifest.read(artifact)
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


_register_commands()

if __name__ == "__main__":
    sys.exit(main())
