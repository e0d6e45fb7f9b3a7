"""``hoi-edge train``: train CLIP4HOI's interaction head and prompts on HICO-DET-format data."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import click

from hoi_edge.cli_options import (
    DEFAULT_MODEL,
    device_option,
    model_option,
    split_options,
    vocab_option,
    weights_options,
)
from hoi_edge.clickutil import SuggestingChoice, deprecated_alias, examples
from hoi_edge.core.atomic import check_writable
from hoi_edge.core.errors import HOIEdgeError, InputFileError, WeightsError
from hoi_edge.model.config import PRESET_HELP, PRESETS
from train.dataset import HICODataset, find_data, load_annotations

NO_SPLIT = "none"


@click.command("train", epilog=examples(
    "hoi-edge train --data hico/ --split rf-uc --epochs 20            # from the default model",
    "hoi-edge train --data hico/ --preset clip4hoi-nanodet-tiny --epochs 2 --max-steps-per-epoch 10",
    "hoi-edge train --annotations ann.json --images-dir images/ --model runs/train/last.pt --epochs 5",
    "hoi-edge train --data hico/ --resume runs/train/last.pt --epochs 30",
    "torchrun --nproc_per_node 4 -m train --data hico/ --batch-size 8     # 4 GPUs"))
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Folder with annotations.json (or one *.json) and images/ (or the images beside it).")
@click.option("--annotations", type=click.Path(path_type=Path), help="Annotation JSON (fredzzhang/hicodet format).")
@click.option("--images-dir", "images", type=click.Path(path_type=Path), help="Folder holding the annotated images.")
@deprecated_alias("--images", "--images-dir", "images", type=click.Path(path_type=Path))
@split_options
@click.option("--preset", type=SuggestingChoice(sorted(PRESETS)), default=None,
              help="Start from a preset architecture with pretrained parts instead of --model: "
                   + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()) + ".")
@model_option
@deprecated_alias("--init", "--model", "model", type=click.Path(path_type=Path))
@weights_options
@vocab_option()
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-4, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--accumulate", type=click.IntRange(min=1), default=1, show_default=True,
              help="Micro-batches per optimizer step.")
@click.option("--lr-drop", type=click.IntRange(min=1), default=10, show_default=True, help="Epoch of the x0.1 lr drop.")
@click.option("--max-steps-per-epoch", type=click.IntRange(min=1), default=None, help="Cap steps (smoke runs).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="Data-loading processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("runs/train"), show_default=True,
              help="Folder for last.pt and train_log.jsonl.")
@click.option("--resume", type=click.Path(path_type=Path), help="Continue a run from its last.pt.")
@device_option
@click.option("--no-gt-instances", is_flag=True, help="Do not add GT boxes the detector misses as instances.")
@click.option("--no-hflip", is_flag=True, help="No random horizontal flips.")
@click.option("--slim", is_flag=True, help="Leave the frozen DETR/CLIP weights out of checkpoints.")
@click.option("--cache-features", "cache_dir", type=click.Path(path_type=Path), default=None,
              help="Compute the frozen detector/CLIP image outputs once into this folder and train from it "
                   "(random flips are then off).")
@click.option("--dist-timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Under torchrun: minutes a rank waits for the others before failing.")
def train_command(**opts) -> None:
    """Train the HO interactor, HOI decoder and prompt context of CLIP4HOI (DETR and CLIP stay frozen).

    It starts from --model (default: the default model, as in every command), a --preset, or --resume.
    Multi-GPU / multi-node: launch it with torchrun (torchrun --nproc_per_node N -m train ...);
    --batch-size is per process, so the global batch is N x batch size x --accumulate. Without --device
    it trains on CUDA when there is a GPU.
    """
    from train import distributed

    try:
        with distributed.setup(opts["device"], opts["dist_timeout"]) as (env, dev):
            _train(SimpleNamespace(**{**opts, "device": str(dev)}), env)
    except HOIEdgeError as exc:
        raise click.ClickException(str(exc)) from exc


def _train(o: SimpleNamespace, env) -> None:
    """The command's work on one rank (``env``); only rank 0 prints."""
    import torch

    from train.trainer import TrainConfig, Trainer

    def echo(message: str) -> None:
        if env.is_main:
            click.echo(message)

    ann_file, image_dir = _data_paths(o.data_dir, o.annotations, o.images)
    check_writable(o.out_dir, "--out folder")      # before minutes of model building and training
    if o.cache_dir:
        check_writable(o.cache_dir, "--cache-features folder")
    loaded = load_annotations(ann_file)               # bad data fails before a big model is built
    torch.manual_seed(o.seed)
    model = _model(o.preset, o.model, o.resume, o.detector_weights, o.clip_weights, o.vocab)
    split, unseen = _split(o.split, o.splits, model.vocab, ann_file)
    dataset = HICODataset(ann_file, image_dir, unseen=unseen, hflip=not o.no_hflip, seed=o.seed, annotations=loaded)
    ranks = f" on {env.world_size} processes" if env.world_size > 1 else ""
    echo(f"{len(dataset)} training images from {ann_file} (split {split}: {len(unseen)} unseen classes, "
         f"{len(dataset.all_annotations) - len(dataset)} images dropped){ranks}")
    cfg = TrainConfig(epochs=o.epochs, lr=o.lr, weight_decay=o.weight_decay, batch_size=o.batch_size,
                      accumulate=o.accumulate, lr_drop=o.lr_drop, seed=o.seed, out_dir=str(o.out_dir),
                      resume=str(o.resume) if o.resume else None, device=o.device,
                      max_steps_per_epoch=o.max_steps_per_epoch, add_gt_instances=not o.no_gt_instances,
                      num_workers=o.workers, include_frozen=not o.slim, dist_timeout_min=o.dist_timeout,
                      cache_features=str(o.cache_dir) if o.cache_dir else None)
    trainer = Trainer(model, dataset, cfg, split=split, notify=lambda msg: click.echo(msg, err=True))
    if trainer.epoch >= o.epochs:
        echo(f"{o.resume} already finished epoch {trainer.epoch} of {o.epochs}; nothing to do")
        return
    records = trainer.fit()
    last = records[-1]["loss"] if records else float("nan")
    echo(f"trained to epoch {trainer.epoch}/{o.epochs} ({trainer.step} steps, last loss {last:.4f}); "
         f"checkpoint {Path(o.out_dir) / 'last.pt'}, log {Path(o.out_dir) / 'train_log.jsonl'}")


def _data_paths(data_dir: Path | None, annotations: Path | None, images: Path | None) -> tuple[Path, Path]:
    if data_dir is not None:
        if annotations or images:
            raise InputFileError("give either --data DIR or --annotations FILE --images-dir DIR, not both")
        return find_data(data_dir)
    if annotations is None or images is None:
        raise InputFileError("no training data: give --data DIR, or --annotations FILE and --images-dir DIR")
    return annotations, images


def _split(name: str | None, splits: str | None, vocab, ann_file: Path) -> tuple[str, tuple[int, ...]]:
    """(split name as given, lower case; unseen classes); ``none`` (or no --split) trains on every class."""
    from hoi_edge.eval.splits import resolve_split

    if name is None or name.strip().lower() == NO_SPLIT:
        return NO_SPLIT, ()
    return name.strip().lower(), resolve_split(name, vocab, splits, ann_file).unseen


def _model(preset, model, resume, detector_weights, clip_weights, vocab):
    """The model to train: the resume checkpoint, a --model checkpoint ('default': the default model, as in
    every command; also when nothing is named), or a preset with pretrained parts."""
    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.model.config import PRESETS
    from hoi_edge.weights.checkpoint import build_model, load_model
    from hoi_edge.weights.defaults import resolve_checkpoint

    chosen = [name for name, v in (("--preset", preset), ("--model", model), ("--resume", resume)) if v]
    if len(chosen) > 1:
        raise InputFileError(f"{' and '.join(chosen)} both name the model; give one")
    if resume:
        if detector_weights or clip_weights or vocab:
            raise InputFileError("--detector-weights/--clip-weights/--vocab do not apply to --resume (the "
                                 "checkpoint holds its weights and vocabulary)")
        return load_model(resume)
    if not preset:      # --model, or nothing: the default model (local weight files build it offline)
        if model and str(model) != DEFAULT_MODEL and (detector_weights or clip_weights):
            raise InputFileError(f"--detector-weights/--clip-weights build the default model or a --preset; the "
                                 f"checkpoint {model} holds its own weights")
        return load_model(resolve_checkpoint(model, clip_weights, detector_weights), vocabulary=vocab)
    cfg = PRESETS[preset]()
    if detector_weights or preset == "clip4hoi-base":
        cfg.detector.weights = detector_weights or cfg.detector.weights or "detr-r50"
    if clip_weights:
        cfg.clip.pretrained = clip_weights
    from hoi_edge.weights.defaults import offline_reason  # the same fast offline check as detect / export

    if (reason := offline_reason(cfg)) is not None:
        raise WeightsError(f"cannot fetch the {preset} weights: {reason}; pass local --detector-weights / "
                           "--clip-weights files, or start from --model default (works offline) or a checkpoint")
    return build_model(cfg, load_vocabulary(vocab or "hico"))
