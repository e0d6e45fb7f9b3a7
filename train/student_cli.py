"""``hoi-edge distill``: train an edge student (``clip4hoi-edge``) toward a full CLIP4HOI teacher on unlabelled
images (:mod:`train.student`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import click

from hoi_edge.cli_options import device_option
from hoi_edge.clickutil import examples
from hoi_edge.core.atomic import check_writable
from hoi_edge.core.errors import HOIEdgeError, InputFileError, WeightsError
from hoi_edge.model.config import PRESET_HELP, PRESETS

STUDENT_PRESETS = sorted(name for name in PRESETS if PRESETS[name]().clip.image_tower.replaces_own)


@click.command("distill", epilog=examples(
    "hoi-edge distill --teacher base.pt --images unlabelled/ --heldout held_out/ --out student.pt",
    "hoi-edge distill --teacher base.pt --images street.mp4 --max-images 500 --epochs 20",
    "hoi-edge distill --teacher base.pt --images unlabelled/ --resume student_run/last.pt"))
@click.option("--teacher", type=click.Path(path_type=Path), required=True,
              help="The teacher: a hoi-edge checkpoint (a trained clip4hoi-base, say).")
@click.option("--student", type=click.Choice(STUDENT_PRESETS), default="clip4hoi-edge", show_default=True,
              help="The student preset: " + "; ".join(f"{k}: {PRESET_HELP[k]}" for k in STUDENT_PRESETS) + ".")
@click.option("--images", type=click.Path(path_type=Path), required=True,
              help="Unlabelled training images: a folder of images, or a video (frames sampled evenly).")
@click.option("--max-images", type=click.IntRange(min=1), default=None,
              help="Use at most this many images (the first, sorted; a video: this many frames) [default: all; 64 "
                   "frames of a video].")
@click.option("--heldout", type=click.Path(path_type=Path), default=None,
              help="Held-out images (a folder or a video) never trained on: the student-teacher distance there is "
                   "measured before the first step and after every epoch.")
@click.option("--heldout-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Held-out images (or video frames) used.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("student.pt"), show_default=True,
              help="The distilled student checkpoint (export it like any checkpoint).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for last.pt (resumable) and distill_log.jsonl [default: OUT's name + '_run' beside it].")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue a run from its last.pt.")
@click.option("--tower-weights", default=None,
              help="Initial weights of the student's image tower: an open_clip tag, a local file, or 'none' for random "
                   "init [default: the preset's tag, which downloads].")
@click.option("--student-detector-weights", "detector_weights", default=None,
              help="The student's detector weights: a named release or a local file [default: the preset's].")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--max-steps-per-epoch", type=click.IntRange(min=1), default=None, help="Cap steps (smoke runs).")
@click.option("--global-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the global-embedding distance.")
@click.option("--pair-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the pair-logit distance (the teacher's logits on the student's pairs).")
@click.option("--patch-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Weight of the patch-token distance (through a learned projection).")
@click.option("--detector-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Weight of box and class distillation from the teacher's kept instances (> 0 trains the student's "
                   "detector too).")
@click.option("--match-iou", type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True,
              help="A student instance takes the teacher candidate it overlaps most, at least this much.")
@click.option("--no-cache", is_flag=True,
              help="Recompute the frozen networks every epoch instead of keeping their outputs in memory (large "
                   "image sets: about 1-2 MB per image are kept).")
@click.option("--seed", type=int, default=0, show_default=True)
@device_option
def distill_command(**opts) -> None:
    """Distil a full CLIP4HOI teacher into an edge student on unlabelled images.

    The student (NanoDet-g, a light CLIP image tower, a slim HOI head) takes the teacher's CLIP text tower and
    prompts, and learns the teacher's global CLIP embedding, its pair logits on the student's own pairs and its
    patch tokens (and optionally its boxes). Not the same as 'export --distill', which is quantization-aware
    distillation of one network during INT8 export.
    """
    try:
        _distill(SimpleNamespace(**opts))
    except HOIEdgeError as exc:
        raise click.ClickException(str(exc)) from exc


def _distill(o: SimpleNamespace) -> None:
    from hoi_edge.weights.checkpoint import load_model
    from train.student import StudentConfig, StudentDistiller, make_student, teacher_record
    from train.unlabelled import unlabelled_images

    run_dir = o.run_dir or o.out.with_name(o.out.stem + "_run")
    check_writable(o.out, "--out")
    check_writable(run_dir, "--run-dir folder")
    images = unlabelled_images(o.images, o.max_images, "--images")        # bad inputs fail before model building
    heldout = unlabelled_images(o.heldout, o.heldout_images, "--heldout") if o.heldout else None
    if heldout is not None and set(heldout.names) & set(images.names):
        raise InputFileError("--heldout shares images with --images: held-out images must not be trained on")
    teacher = load_model(o.teacher)
    cfg = StudentConfig(epochs=o.epochs, lr=o.lr, batch_size=o.batch_size, seed=o.seed,
                        max_steps_per_epoch=o.max_steps_per_epoch, global_weight=o.global_weight,
                        pair_weight=o.pair_weight, patch_weight=o.patch_weight, detector_weight=o.detector_weight,
                        match_iou=o.match_iou, cache=not o.no_cache, out=str(o.out), run_dir=str(run_dir),
                        resume=str(o.resume) if o.resume else None, device=o.device)
    student = load_model(o.resume) if o.resume else \
        make_student(teacher, _student_config(o.student, o.tower_weights, o.detector_weights), teacher_record(o.teacher, teacher))
    distiller = StudentDistiller(teacher, student, images, cfg, o.teacher, heldout,
                                 notify=lambda msg: click.echo(msg, err=True))
    click.echo(f"distilling {o.teacher} into {o.student} on {len(images)} images from {o.images}"
               + (f", {len(heldout)} held out from {o.heldout}" if heldout else ", no held-out images"), err=True)
    if distiller.epoch >= cfg.epochs:
        click.echo(f"{o.resume} already finished epoch {distiller.epoch} of {cfg.epochs}; nothing to do")
        return
    records = distiller.fit()
    distiller.save_student()
    last = records[-1]["loss"] if records else float("nan")
    ratio = distiller.improvement()
    heldout_text = "" if ratio is None else (
        f"; held-out distance {distiller.history[0]['heldout']['loss']:.4f} -> "
        f"{distiller.history[-1]['heldout']['loss']:.4f} ({ratio:.2f}x lower)")
    click.echo(f"distilled to epoch {distiller.epoch}/{cfg.epochs} ({distiller.step} steps, last loss {last:.4f})"
               f"{heldout_text}; student {o.out}, log {run_dir / 'distill_log.jsonl'}")


def _student_config(preset: str, tower_weights: str | None, detector_weights: str | None):
    """The student preset with the chosen tower and detector weights, checked to be fetchable before building."""
    from hoi_edge.weights.defaults import offline_reason

    cfg = PRESETS[preset]()
    if tower_weights is not None:
        cfg.clip.image_tower = dataclasses.replace(
            cfg.clip.image_tower, pretrained=None if tower_weights.lower() == "none" else tower_weights)
    if detector_weights:
        cfg.detector.weights = detector_weights
    cfg.clip.pretrained = None                 # the text tower comes from the teacher, nothing to fetch
    if (reason := offline_reason(cfg)) is not None:
        raise WeightsError(f"cannot fetch the student's image-tower weights ({cfg.clip.image_tower.pretrained}): "
                           f"{reason}; pass --tower-weights FILE, or --tower-weights none for a random init")
    return cfg
