"""``hoi-edge eval``: score a JSON-lines prediction file with the official HICO-DET protocol.

Prints Markdown tables and writes the full result (per-class AP included) as JSON, by
default to ``<pred stem>.eval.json`` next to the prediction file.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click

from hoi_edge.core.atomic import atomic_write_text
from hoi_edge.core.errors import HOIEdgeError, InputFileError
from hoi_edge.eval.evaluator import SETTINGS, EvalConfig, evaluate
from hoi_edge.eval.groundtruth import load_groundtruth
from hoi_edge.eval.predictions import coverage_warning, read_predictions
from hoi_edge.eval.splits import load_split

_PATH = click.Path(dir_okay=False, path_type=Path)


def _splits_path(gt_path: Path, splits_path: Path | None) -> Path:
    """``--splits`` if given, else a ``splits.json`` next to the GT file."""
    if splits_path is not None:
        return splits_path
    default = gt_path.parent / "splits.json"
    if default.is_file():
        return default
    raise InputFileError(f"--split needs --splits PATH (no splits.json next to {gt_path})")


def default_out_path(pred_path: Path) -> Path:
    """``preds.jsonl`` -> ``preds.eval.json`` in the same folder."""
    return pred_path.with_name(f"{pred_path.stem}.eval.json")


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


@click.command("eval")
@click.option("--gt", "gt_path", type=_PATH, required=True,
              help="GT JSON (fredzzhang/hicodet instances_test2015.json or per-image 'images' list).")
@click.option("--pred", "pred_path", type=_PATH, required=True,
              help="Predictions, JSON lines: one {image, detections} object per image.")
@click.option("--split", "split_name", default=None,
              help="Zero-shot split (rf-uc, nf-uc, uo, uv): also report Unseen / Seen mAP.")
@click.option("--splits", "splits_path", type=_PATH, default=None,
              help="splits.json for --split (default: splits.json next to --gt).")
@click.option("--setting", type=click.Choice(SETTINGS), default="default", show_default=True,
              help="Default or Known-Object (detections kept only on images showing the class's object).")
@click.option("--top-k", "top_k", type=click.IntRange(min=1), default=None,
              help="Keep only the N highest-scored detections per image (GEN-VLKT uses 100).")
@click.option("--box-offset", "box_offset", type=float, default=0.0, show_default=True, callback=_finite,
              help="added to every predicted coordinate, e.g. 1 for 0-based predictions from "
                   "PPDM/GEN-VLKT-style annotations")
@click.option("--out", "out_path", type=_PATH, default=None,
              help="Where to write the full result (per-class AP included) as JSON "
                   "[default: <pred stem>.eval.json next to --pred].")
def eval_command(
    gt_path: Path,
    pred_path: Path,
    split_name: str | None,
    splits_path: Path | None,
    setting: str,
    top_k: int | None,
    box_offset: float,
    out_path: Path | None,
) -> None:
    """Compute HICO-DET mAP (Full / Rare / Non-rare, optionally zero-shot Unseen / Seen).

    Prints the tables and writes the full result as JSON (see --out).
    """
    out = out_path if out_path is not None else default_out_path(pred_path)
    try:
        if out.resolve() == pred_path.resolve():
            raise InputFileError(f"--out {out} would overwrite the prediction file")
        start = time.perf_counter()
        gt = load_groundtruth(gt_path)
        split = load_split(_splits_path(gt_path, splits_path), split_name) if split_name else None
        predictions = read_predictions(pred_path, gt)
        if (warning := coverage_warning(predictions, gt)) is not None:
            click.echo(f"warning: {warning}", err=True)
        config = EvalConfig(setting=setting, top_k=top_k, zero_shot=split, box_offset=box_offset)
        result = evaluate(gt, predictions, config, progress=True)
        elapsed = time.perf_counter() - start
    except HOIEdgeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"GT: {gt_path} ({gt.num_images} images, {gt.num_pairs} pairs); predictions: {pred_path}")
    click.echo(result.to_markdown())
    try:
        atomic_write_text(out, json.dumps(result.to_dict(), indent=1) + "\n")
    except OSError as exc:
        raise click.ClickException(f"cannot write result file {out}: {exc}") from None
    click.echo(f"Evaluated in {elapsed:.1f} s. Result written to {out}.")
