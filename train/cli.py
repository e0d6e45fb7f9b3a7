"""``hoi-edge train``: train CLIP4HOI's interaction head and prompts on HICO-DET-format data."""

from __future__ import annotations

from pathlib import Path

import click

from hoi_edge.errors import HOIEdgeError, InputFileError
from train.dataset import HICODataset, find_data, load_annotations

SPLITS = ("rf-uc", "nf-uc", "uo", "uv", "none")


@click.command("train")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Folder with annotations.json (or one *.json) and images/ (or the images beside it).")
@click.option("--annotations", type=click.Path(path_type=Path), help="Annotation JSON (fredzzhang/hicodet format).")
@click.option("--images", type=click.Path(path_type=Path), help="Folder holding the annotated images.")
@click.option("--split", type=click.Choice(SPLITS, case_sensitive=False), default="none", show_default=True,
              help="Zero-shot split: pairs with an unseen HOI label are dropped and unseen classes get no loss.")
@click.option("--preset", type=click.Choice(["clip4hoi-tiny", "clip4hoi-base"]), default=None,
              help="Start from a preset architecture with pretrained DETR + CLIP [default: clip4hoi-base].")
@click.option("--init", "init_ckpt", type=click.Path(path_type=Path), help="Start from a hoi-edge checkpoint.")
@click.option("--detector-weights", help="Preset only: DETR weights, 'detr-r50'/'detr-r101' or a local .pth.")
@click.option("--clip-weights", help="Preset only: CLIP weights, an open_clip tag or a local file.")
@click.option("--vocab", default="hico", show_default=True, help="Vocabulary of a preset model (name or JSON).")
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
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... [default: cuda when available].")
@click.option("--no-gt-instances", is_flag=True, help="Do not add GT boxes the detector misses as instances.")
@click.option("--no-hflip", is_flag=True, help="No random horizontal flips.")
@click.option("--slim", is_flag=True, help="Leave the frozen DETR/CLIP weights out of checkpoints.")
def train_command(data_dir, annotations, images, split, preset, init_ckpt, detector_weights, clip_weights, vocab,
                  epochs, lr, weight_decay, batch_size, accumulate, lr_drop, max_steps_per_epoch, workers, seed,
                  out_dir, resume, device, no_gt_instances, no_hflip, slim) -> None:
    """Train the HO interactor, HOI decoder and prompt context of CLIP4HOI (DETR and CLIP stay frozen)."""
    from train.trainer import TrainConfig, Trainer

    try:
        ann_file, image_dir = _data_paths(data_dir, annotations, images)
        loaded = load_annotations(ann_file)               # bad data fails before a big model is built
        import torch

        torch.manual_seed(seed)
        model = _model(preset, init_ckpt, resume, detector_weights, clip_weights, vocab)
        split = split.lower()
        unseen = () if split == "none" else model.vocab.unseen(split)
        dataset = HICODataset(ann_file, image_dir, unseen=unseen, hflip=not no_hflip, seed=seed, annotations=loaded)
        click.echo(f"{len(dataset)} training images from {ann_file} (split {split}: {len(unseen)} unseen classes, "
                   f"{len(dataset.all_annotations) - len(dataset)} images dropped)")
        cfg = TrainConfig(epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                          accumulate=accumulate, lr_drop=lr_drop, seed=seed, out_dir=str(out_dir),
                          resume=str(resume) if resume else None, device=device,
                          max_steps_per_epoch=max_steps_per_epoch, add_gt_instances=not no_gt_instances,
                          num_workers=workers, include_frozen=not slim)
        trainer = Trainer(model, dataset, cfg, split=split)
        if trainer.epoch >= epochs:
            click.echo(f"{resume} already finished epoch {trainer.epoch} of {epochs}; nothing to do")
            return
        records = trainer.fit()
    except HOIEdgeError as exc:
        raise click.ClickException(str(exc)) from exc
    last = records[-1]["loss"] if records else float("nan")
    click.echo(f"trained to epoch {trainer.epoch}/{epochs} ({trainer.step} steps, last loss {last:.4f}); "
               f"checkpoint {Path(out_dir) / 'last.pt'}, log {Path(out_dir) / 'train_log.jsonl'}")


def _data_paths(data_dir: Path | None, annotations: Path | None, images: Path | None) -> tuple[Path, Path]:
    if data_dir is not None:
        if annotations or images:
            raise InputFileError("give either --data DIR or --annotations FILE --images DIR, not both")
        return find_data(data_dir)
    if annotations is None or images is None:
        raise InputFileError("no training data: give --data DIR, or --annotations FILE and --images DIR")
    return annotations, images


def _model(preset, init_ckpt, resume, detector_weights, clip_weights, vocab):
    """The model to train: the resume checkpoint, an --init checkpoint, or a preset with pretrained parts."""
    from hoi_edge.checkpoint import build_model, load_model
    from hoi_edge.config import PRESETS
    from hoi_edge.vocabulary import load_vocabulary

    chosen = [name for name, v in (("--preset", preset), ("--init", init_ckpt), ("--resume", resume)) if v]
    if len(chosen) > 1:
        raise InputFileError(f"{' and '.join(chosen)} both name the model; give one")
    if (detector_weights or clip_weights) and (init_ckpt or resume):
        raise InputFileError("--detector-weights/--clip-weights only apply to --preset")
    if resume or init_ckpt:
        return load_model(resume or init_ckpt)
    preset = preset or "clip4hoi-base"
    cfg = PRESETS[preset]()
    if detector_weights or preset == "clip4hoi-base":
        cfg.detector.weights = detector_weights or cfg.detector.weights or "detr-r50"
    if clip_weights:
        cfg.clip.pretrained = clip_weights
    return build_model(cfg, load_vocabulary(vocab))
