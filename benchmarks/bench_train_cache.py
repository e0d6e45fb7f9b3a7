"""Seconds per training epoch with and without ``--cache-features``, side by side in one run.

    python benchmarks/bench_train_cache.py                                # tiny test model
    python benchmarks/bench_train_cache.py --preset clip4hoi-base --epochs 2 --threads 2   # CLIP4HOI-base sizes

Data: the hand-labelled photos (``samples/labels/photos_hoi.json``, images in ``../shared/data/photos``);
random flips off in both runs (the cache cannot honour them), so both train the same thing. Weights are
random (``clip4hoi-base``: DETR-R50 at 640 px + CLIP ViT-B/16, the paper's sizes): time does not depend on
them. Each run trains ``--epochs`` epochs after one untimed warm-up epoch; the cached run's one-off cache
build is reported apart. The per-step cost that no cache removes, the text tower forward + backward over
every class prompt (the prompt context is trained), is timed too, as it bounds the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, cpu_caption  # noqa: E402

LABELS = REPO / "samples" / "labels" / "photos_hoi.json"


def build(preset: str):
    """A random-init model of ``preset`` (the tiny test model for clip4hoi-tiny); no weights are downloaded."""
    import torch

    from hoi_edge.data.vocabulary import load_vocabulary
    from hoi_edge.model.config import PRESETS
    from hoi_edge.testing import make_tiny_model
    from hoi_edge.weights.checkpoint import build_model

    if preset == "clip4hoi-tiny":
        return make_tiny_model()
    torch.manual_seed(0)
    cfg = PRESETS[preset]()
    cfg = dataclasses.replace(cfg, clip=dataclasses.replace(cfg.clip, pretrained=None),
                              detector=dataclasses.replace(cfg.detector, weights=None))
    return build_model(cfg, load_vocabulary("hico"))


def epoch_seconds(model, dataset, out: Path, epochs: int, batch_size: int,
                  cache: Path | None) -> tuple[list[float], float]:
    """(seconds of each timed epoch, seconds spent building the cache)."""
    from train.trainer import TrainConfig, Trainer

    cfg = TrainConfig(epochs=1 + epochs, lr=1e-4, batch_size=batch_size, lr_drop=None, out_dir=str(out),
                      device="cpu", cache_features=str(cache) if cache else None, text_grad_checkpointing=False)
    t0 = time.perf_counter()
    trainer = Trainer(model, dataset, cfg, notify=lambda msg: None)
    build = time.perf_counter() - t0
    records = trainer.fit()
    last = {}
    for r in records:                      # "time" is seconds since the epoch began, at each step
        last[r["epoch"]] = r["time"]
    return [last[e] for e in sorted(last)[1:]], build


def text_step_seconds(model) -> float:
    """One forward + backward of the text tower over every class prompt (paid every step, cache or not)."""
    model.train()
    t0 = time.perf_counter()
    model.text_embeddings().sum().backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="clip4hoi-tiny", choices=["clip4hoi-tiny", "clip4hoi-base"])
    ap.add_argument("--labels", type=Path, default=LABELS)
    ap.add_argument("--images", type=Path, default=None, help="default: ../shared/data/photos")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up epoch)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()

    import numpy as np
    import torch

    from hoi_edge.testing import require_shared_data
    from train.dataset import HICODataset

    if args.threads:
        torch.set_num_threads(args.threads)
    images = args.images or require_shared_data() / "photos"
    dataset = HICODataset(args.labels, images, hflip=False)
    model = build(args.preset)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    text = text_step_seconds(model)
    with tempfile.TemporaryDirectory() as tmp:
        plain, _ = epoch_seconds(model, dataset, Path(tmp) / "plain", args.epochs, args.batch_size, None)
        model.load_state_dict(state)
        cache = Path(tmp) / "cache"
        cached, build_s = epoch_seconds(model, dataset, Path(tmp) / "cached", args.epochs, args.batch_size, cache)
        size_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
    steps = -(-len(dataset) // args.batch_size)
    a, b = float(np.median(plain)), float(np.median(cached))
    print("| Model | Images | Steps/epoch | s/epoch (images) | s/epoch (cache) | Speed-up | Cache build s | Cache MB "
          "| Text tower s/step |")
    print("| --- | --: | --: | --: | --: | --: | --: | --: | --: |")
    print(f"| {args.preset} (random init) | {len(dataset)} | {steps} | {a:.2f} | {b:.2f} | {a / b:.1f}x | "
          f"{build_s:.1f} | {size_mb:.1f} | {text:.2f} |")
    print(f"\nmedian of {args.epochs} timed epochs after 1 warm-up, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, CPU; per-epoch seconds: images {[round(x, 2) for x in plain]}, "
          f"cache {[round(x, 2) for x in cached]}. {cpu_caption()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
