"""The training loop: AdamW on the trainable parts of CLIP4HOI, JSON-lines log, per-epoch checkpoints, resume.

Frozen (``CLIP4HOI.freeze_pretrained``): DETR and both CLIP towers. Trained: HO interactor,
HOI decoder, prompt context (``classifier.prompts.prefix/conjunction``) and the pair/global
logit scales and biases. Text embeddings are recomputed for every batch because the prompt
context changes every step; nothing image-side is cached.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from hoi_edge.checkpoint import FROZEN_PREFIXES, frozen_sources_named, read_checkpoint, save_checkpoint
from hoi_edge.errors import HOIEdgeError, WeightsError
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.weights import check_state
from train.dataset import HICODataset
from train.forward import TrainingForward
from train.losses import HOILoss

LOG_NAME = "train_log.jsonl"
LAST_NAME = "last.pt"


@dataclass
class TrainConfig:
    """Everything that decides a run; saved in every checkpoint (``extra['train_config']``)."""

    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 4
    accumulate: int = 1                   # micro-batches per optimizer step
    lr_drop: int | None = 10              # lr x0.1 from this epoch on (UPT's schedule); None = constant
    clip_grad_norm: float | None = 0.1    # UPT clips to 0.1
    amp: bool | None = None               # None: on when training on CUDA
    seed: int = 0
    log_interval: int = 1                 # optimizer steps between JSON-lines records
    out_dir: str = "runs/train"           # checkpoints + log
    resume: str | None = None             # a last.pt to continue from
    device: str | None = None             # None: cuda when available
    max_steps_per_epoch: int | None = None  # cap for smoke tests
    focal_alpha: float = 0.5
    focal_gamma: float = 0.2
    global_loss_weight: float = 1.0
    add_gt_instances: bool = True         # see train.targets
    num_workers: int = 0
    include_frozen: bool = True           # self-contained checkpoints (detector + CLIP weights inside)
    text_grad_checkpointing: bool = True  # recompute text-encoder activations in backward (600 prompts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Trainer:
    """``Trainer(model, dataset, cfg, split).fit()``; ``split`` names the zero-shot split for the checkpoint."""

    def __init__(self, model: CLIP4HOI, dataset: HICODataset, cfg: TrainConfig, split: str = "none") -> None:
        self.cfg, self.dataset, self.split = cfg, dataset, split
        try:
            self.device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError as exc:
            raise HOIEdgeError(f"unknown device '{cfg.device}': {exc}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise HOIEdgeError(f"device '{cfg.device}' asked for, but CUDA is not available here")
        self.amp = cfg.amp if cfg.amp is not None else self.device.type == "cuda"
        if self.amp and self.device.type != "cuda":
            raise HOIEdgeError("mixed precision (amp) needs a CUDA device")
        if cfg.batch_size < 1 or cfg.accumulate < 1 or cfg.epochs < 0:
            raise HOIEdgeError("batch_size and accumulate must be >= 1 and epochs >= 0")
        if not cfg.include_frozen and not frozen_sources_named(model.cfg):   # fail before training, not after
            raise HOIEdgeError("--slim (include_frozen=False) needs DETR and CLIP weights named in the model config "
                               "(a tag or file to reload them from); this model has random or unnamed ones")
        _seed_everything(cfg.seed)
        self.model = model.to(self.device)
        dataset.check_vocabulary(model.vocab.hoi_object)
        self.forward = TrainingForward(model, HOILoss(cfg.focal_alpha, cfg.focal_gamma, cfg.global_loss_weight),
                                       dataset.unseen, cfg.add_gt_instances)
        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.ndim >= 2 and p is not model.classifier.prompts.prefix
                 and p is not model.classifier.prompts.conjunction]
        no_decay = [p for p in self.params if all(p is not q for q in decay)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.out_dir = Path(cfg.out_dir)
        self.epoch, self.step = 0, 0
        if cfg.resume:
            self._resume(Path(cfg.resume))

    # ------------------------------------------------------------------ checkpoints
    def _resume(self, path: Path) -> None:
        """Weights, optimizer and AMP scaler state, epoch and step counters from a checkpoint of this trainer."""
        data = read_checkpoint(path)
        extra = data.get("extra") or {}
        if "optimizer" not in extra or "epoch" not in extra:
            raise WeightsError(f"{path} is not a training checkpoint (no optimizer state); use it as --init instead")
        split = (extra.get("split") or {}).get("name", "none")
        if split != self.split:
            raise HOIEdgeError(f"{path} was trained with split '{split}', not '{self.split}'")
        state = data["state_dict"]
        own = {k: v for k, v in self.model.state_dict().items()
               if data["includes_frozen"] or not k.startswith(FROZEN_PREFIXES)}
        check_state(own, state, str(path))
        self.model.load_state_dict(state, strict=False)
        try:
            self.optimizer.load_state_dict(extra["optimizer"])
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"optimizer state in {path} does not fit this model: {exc}") from exc
        if extra.get("scaler") and self.amp:
            self.scaler.load_state_dict(extra["scaler"])
        self.epoch, self.step = int(extra["epoch"]), int(extra.get("step", 0))

    def save(self, path: Path | None = None) -> Path:
        extra = {"epoch": self.epoch, "step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.amp else {}, "train_config": self.cfg.to_dict(),
                 "split": {"name": self.split, "unseen": list(self.dataset.unseen)}}
        return save_checkpoint(self.model, path or self.out_dir / LAST_NAME, self.cfg.include_frozen, extra)

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, float]]:
        """Train from ``self.epoch`` to ``cfg.epochs``; returns the per-step records (also in the JSON-lines log)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        records: list[dict[str, float]] = []
        with self._text_checkpointing(), (self.out_dir / LOG_NAME).open("a", encoding="utf-8") as log:
            while self.epoch < self.cfg.epochs:
                records += self._epoch(log)
                self.epoch += 1
                self.save()
        return records

    def _epoch(self, log) -> list[dict[str, float]]:
        cfg, model = self.cfg, self.model
        self.dataset.set_epoch(self.epoch)
        loader = DataLoader(self.dataset, batch_size=cfg.batch_size, shuffle=True, collate_fn=list,
                            num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(cfg.seed + self.epoch))
        steps = math.ceil(len(loader) / cfg.accumulate)
        if cfg.max_steps_per_epoch:
            steps = min(steps, cfg.max_steps_per_epoch)
        lr = cfg.lr * (0.1 if cfg.lr_drop and self.epoch >= cfg.lr_drop else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        model.train()
        records, acc, done = [], _Accumulator(), 0
        bar = tqdm(total=steps, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", unit="step", dynamic_ncols=True)
        start = time.perf_counter()
        try:
            for i, batch in enumerate(loader):
                out = self._micro_step(batch)
                acc.add(out)
                last = i + 1 == len(loader)
                if (i + 1) % cfg.accumulate and not last:
                    continue
                self._optimizer_step()
                self.step, done = self.step + 1, done + 1
                rec = {"epoch": self.epoch + 1, "step": self.step, "lr": lr, **acc.mean(),
                       "time": round(time.perf_counter() - start, 3)}
                records.append(rec)
                acc = _Accumulator()
                if self.step % cfg.log_interval == 0:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                bar.update()
                if done >= steps:
                    break
        finally:
            bar.close()
        return records

    def _micro_step(self, batch) -> dict[str, float]:
        autocast = torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()
        with autocast:
            text = self.model.text_embeddings()
            out = self.forward(batch, text)
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise HOIEdgeError(f"loss is {float(loss)} at epoch {self.epoch + 1}, step {self.step + 1}; "
                               "lower --lr or check the annotations")
        self.scaler.scale(loss / self.cfg.accumulate).backward()
        return {k: float(v.detach()) for k, v in out.items()}

    def _optimizer_step(self) -> None:
        if self.cfg.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    @contextlib.contextmanager
    def _text_checkpointing(self) -> Iterator[None]:
        text = self.model.clip.transformer
        previous = getattr(text, "grad_checkpointing", False)
        text.grad_checkpointing = self.cfg.text_grad_checkpointing
        try:
            yield
        finally:
            text.grad_checkpointing = previous
            self.model.eval()


class _Accumulator:
    """Means of the loss terms over the micro-batches of one optimizer step."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.n += 1

    def mean(self) -> dict[str, float]:
        return {k: v / max(self.n, 1) for k, v in self.sums.items()}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
