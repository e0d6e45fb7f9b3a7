"""``hoi-edge`` command line: a thin layer over the Python API; every user error is one clear line."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from hoi_edge import __version__
from hoi_edge.errors import HOIEdgeError


def friendly_errors(fn):
    """Turn HOIEdgeError into a ClickException (message, exit code 1, no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HOIEdgeError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hoi-edge")
def main() -> None:
    """Zero-shot human-object interaction detection (CLIP4HOI) for edge devices."""


model_option = click.option("--model", "model", default="default", show_default=True,
                            help="hoi-edge checkpoint (.pt), or 'default' for the embedded default model.")
artifact_option = click.option("--artifact", type=click.Path(file_okay=False), default=None,
                               help="Exported artifact folder (OpenVINO / ONNX / ExecuTorch) instead of --model.")
vocab_option = click.option("--vocab", default=None, help="Vocabulary: 'hico' or a JSON file (re-targets the classes).")


@main.command()
@click.argument("source")
@model_option
@artifact_option
@vocab_option
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Annotated image or video to write (default: <source>_hoi.<ext> for files).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Write detections as JSON lines (one line per frame).")
@click.option("--top", default=10, show_default=True, help="Triplets drawn and printed per frame.")
@click.option("--min-score", default=0.0, show_default=True, help="Hide triplets below this score.")
@click.option("--max-frames", type=int, default=None, help="Stop a video/camera after N frames.")
@friendly_errors
def detect(source: str, model: str, artifact: str | None, vocab: str | None, out: str | None,
           json_out: str | None, top: int, min_score: float, max_frames: int | None) -> None:
    """Detect HOIs in SOURCE: an image, a video file or 'camera:N'; draws boxes and labels."""
    from hoi_edge.detect import DetectOptions, run_detect
    from hoi_edge.loading import open_detector

    detector = open_detector(model=model, artifact=artifact, vocabulary=vocab)
    opts = DetectOptions(out=out, json_out=json_out, top=top, min_score=min_score, max_frames=max_frames)
    for frame_index, dets in run_detect(detector, source, opts):
        shown = [d for d in dets if d.score >= min_score][:top]
        click.echo(f"frame {frame_index}: {len(dets)} HOI triplets" + (" (top shown)" if shown else ""))
        for d in shown:
            click.echo(f"  {d.score:.3f}  {d.verb.replace('_', ' ')} {d.object_label}"
                       f"  human={_box(d.human_box)} object={_box(d.object_box)}")
    if opts.written:
        click.echo(f"wrote {', '.join(str(p) for p in opts.written)}")


def _box(b) -> str:
    return "[" + ",".join(f"{v:.0f}" for v in b) + "]"


def _register_optional_commands() -> None:
    from hoi_edge.eval.cli import eval_command

    main.add_command(eval_command, "eval")


_register_optional_commands()

if __name__ == "__main__":
    sys.exit(main())
