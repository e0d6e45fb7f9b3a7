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

from hoi_edge.cli_options import split_options
from hoi_edge.clickutil import SuggestingChoice, examples, friendly_errors
from hoi_edge.core.atomic import atomic_write_text, check_writable
from hoi_edge.core.errors import InputFileError
from hoi_edge.data.vocabulary import load_vocabulary
from hoi_edge.eval.evaluator import SETTINGS, EvalConfig, evaluate
from hoi_edge.eval.groundtruth import load_groundtruth
from hoi_edge.eval.predictions import coverage_warning, read_predictions
from hoi_edge.eval.splits import resolve_split

_PATH = click.Path(dir_okay=False, path_type=Path)


def default_out_path(pred_path: Path) -> Path:
    """``preds.jsonl`` -> ``preds.eval.json`` in the same folder."""
    return pred_path.with_name(f"{pred_path.stem}.eval.json")


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"must be a finite number, got {value}")
    return value


@click.command("eval", epilog=examples(
    "hoi-edge eval --gt hico/instances_test2015.json --pred preds.jsonl",
    "hoi-edge eval --gt hico/instances_test2015.json --pred preds.jsonl --split rf-uc",
    "hoi-edge eval --gt gt.json --pred preds.jsonl --setting known_object --top-k 100 --out result.json"))
@click.option("--gt", "gt_path", type=_PATH, required=True,
              help="GT JSON (fredzzhang/hicodet instances_test2015.json or per-image 'images' list).")
@click.option("--pred", "pred_path", type=_PATH, required=True,
              help="Predictions, JSON lines: one {image, detections} object per image (what 'detect --json' "
                   "writes).")
@split_options
@click.option("--setting", type=SuggestingChoice(SETTINGS), default="default", show_default=True,
              help="Default or Known-Object (detections kept only on images showing the class's object).")
@click.option("--top-k", "top_k", type=click.IntRange(min=1), default=None,
              help="Keep only the N highest-scored detections per image (GEN-VLKT uses 100).")
@click.option("--box-offset", "box_offset", type=float, default=0.0, show_default=True, callback=_finite,
              help="added to every predicted coordinate, e.g. 1 for 0-based predictions from "
                   "PPDM/GEN-VLKT-style annotations")
@click.option("--out", "out_path", type=_PATH, default=None,
              help="Where to write the full result (per-class AP included) as JSON "
                   "[default: <pred stem>.eval.json next to --pred].")
@friendly_errors
def eval_command(
    gt_path: Path,
    pred_path: Path,
    split: str | None,
    splits: str | None,
    setting: str,
    top_k: int | None,
    box_offset: float,
    out_path: Path | None,
) -> None:
    """Compute HICO-DET mAP (Full / Rare / Non-rare, optionally zero-shot Unseen / Seen).

    Prints the tables and writes the full result as JSON (see --out).
    """
    out = out_path if out_path is not None else default_out_path(pred_path)
    if out.resolve() == pred_path.resolve():
        raise InputFileError(f"--out {out} would overwrite the prediction file")
    check_writable(out, "--out")                   # before the evaluation, not after it
    start = time.perf_counter()
    # the split first (a typo fails in a second), then the GT: HICO-DET's vocabulary carries the four splits
    zero_shot = resolve_split(split, load_vocabulary("hico"), splits, gt_path) if split else None
    gt = load_groundtruth(gt_path)
    predictions = read_predictions(pred_path, gt)
    for warning in (coverage_warning(predictions, gt), predictions.warning):
        if warning:
            click.echo(f"warning: {warning}", err=True)
    config = EvalConfig(setting=setting, top_k=top_k, zero_shot=zero_shot, box_offset=box_offset)
    result = evaluate(gt, predictions, config, progress=True)
    elapsed = time.perf_counter() - start
    click.echo(f"GT: {gt_path} ({gt.num_images} images, {gt.num_pairs} pairs); predictions: {pred_path}")
    click.echo(result.to_markdown())
    atomic_write_text(out, json.dumps(result.to_dict(), indent=1) + "\n")
    click.echo(f"Evaluated in {elapsed:.1f} s. Result written to {out}.")
