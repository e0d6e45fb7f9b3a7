"""The training loop: AdamW on the trainable parts of CLIP4HOI, JSON-lines log, per-epoch checkpoints, resume.

Frozen (``CLIP4HOI.freeze_pretrained``): DETR and both CLIP towers. Trained: HO interactor,
HOI decoder, prompt context (``classifier.prompts.prefix/conjunction``) and the pair/global
logit scales and biases. Text embeddings are recomputed for every micro-batch because the
prompt context changes every step; the image side can come from ``--cache-features``
(:mod:`train.feature_cache`).

Under ``torchrun`` (:mod:`train.distributed`) the trainable part (:class:`train.forward.HeadLoss`)
is wrapped in DistributedDataParallel; a DistributedSampler splits and reshuffles the data each
epoch; gradient accumulation skips the all-reduce (``no_sync``) on all but the last micro-batch.
The loss of an optimizer step is the sum over the global batch (all micro-batches, all ranks)
divided by its positives, so N ranks x batch b give the parameters of one process x batch N*b.
Rank 0 alone writes the log and checkpoints; every rank resumes from the same ``last.pt``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.data.vocabulary import canonical_split_name
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.weights.checkpoint import frozen_sources_named
from train import distributed
from train.dataset import HICODataset
from train.forward import PreparedBatch, TrainingForward
from train.loop import (
    RunConfig,
    json_lines_log,
    read_training_checkpoint,
    restore_training_state,
    save_training_checkpoint,
    step_bar,
    write_record,
)
from train.losses import HOILoss

LOG_NAME = "train_log.jsonl"
LAST_NAME = "last.pt"
STEP_TERMS = ("loss", "loss_pair", "loss_global", "n_pos", "n_entries")   # summed over the global batch


@dataclass
class TrainConfig(RunConfig):
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
    dist_timeout_min: float = distributed.DEFAULT_TIMEOUT_MIN  # collectives fail after this (a dead rank)
    cache_features: str | None = None     # folder of the frozen-feature cache (train.feature_cache)


class Trainer:
    """``Trainer(model, dataset, cfg, split).fit()``; ``split`` names the zero-shot split for the checkpoint.

    Inside a process group (``torchrun``, :func:`train.distributed.setup`) it trains data-parallel;
    ``notify`` receives the one-line notices for the user (rank 0 only; default: stderr).
    """

    def __init__(self, model: CLIP4HOI, dataset: HICODataset, cfg: TrainConfig, split: str = "none",
                 notify: Callable[[str], None] | None = None) -> None:
        self.cfg, self.dataset, self.split = cfg, dataset, split
        self.env = distributed.current()
        self.device = distributed.resolve_device(cfg.device, self.env)
        self.notify = notify or (lambda msg: tqdm.write(msg, file=sys.stderr))
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
        self.data = dataset
        if cfg.cache_features:
            from train.feature_cache import cached_dataset

            self.data = cached_dataset(dataset, self.forward.encoder, cfg.cache_features, self.env,
                                       batch_size=cfg.batch_size, num_workers=cfg.num_workers, notify=self._tell)
        self.params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in self.params if p.ndim >= 2 and p is not model.classifier.prompts.prefix
                 and p is not model.classifier.prompts.conjunction]
        no_decay = [p for p in self.params if all(p is not q for q in decay)]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.out_dir = Path(cfg.out_dir)
        self.epoch, self.step = 0, 0
        if cfg.resume:                      # every rank reads the same file: identical weights and optimizer
            self._resume(Path(cfg.resume))
        self.module: torch.nn.Module = self.forward.head_loss
        if self.env.active:
            self.module = _wrap_ddp(self.forward.head_loss, self.device)

    def _tell(self, message: str) -> None:
        if self.env.is_main:
            self.notify(message)

    # ------------------------------------------------------------------ checkpoints
    def _resume(self, path: Path) -> None:
        """Weights, optimizer and AMP scaler state, epoch and step counters from a checkpoint of this trainer."""
        data, extra = read_training_checkpoint(path)
        split = (extra.get("split") or {}).get("name", "none")
        if canonical_split_name(split) != canonical_split_name(self.split):
            raise HOIEdgeError(f"{path} was trained with split '{split}', not '{self.split}'")
        restore_training_state(self.model, self.optimizer, data, path)
        if extra.get("scaler") and self.amp:
            self.scaler.load_state_dict(extra["scaler"])
        self.epoch, self.step = int(extra["epoch"]), int(extra.get("step", 0))

    def save(self, path: Path | None = None) -> Path:
        return save_training_checkpoint(
            self.model, path or self.out_dir / LAST_NAME, self.optimizer, self.epoch, self.step, self.cfg.include_frozen,
            scaler=self.scaler.state_dict() if self.amp else {}, train_config=self.cfg.to_dict(),
            split={"name": self.split, "unseen": list(self.dataset.unseen)}, world_size=self.env.world_size)

    # ------------------------------------------------------------------ loop
    def fit(self) -> list[dict[str, float]]:
        """Train from ``self.epoch`` to ``cfg.epochs``; returns the per-step records (also in the JSON-lines log).

        Every rank returns the same records (the loss terms are reduced over ranks); rank 0 writes them.
        """
        main = self.env.is_main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        records: list[dict[str, float]] = []
        with self._text_checkpointing(), json_lines_log(self.out_dir / LOG_NAME if main else None,
                                                          resumed_at=self.step if self.cfg.resume else None) as log:
            while self.epoch < self.cfg.epochs:
                records += self._epoch(log)
                self.epoch += 1
                if main:
                    self.save()
                distributed.barrier(self.env)   # nobody runs ahead of a checkpoint (or of a rank that failed it)
        return records

    def loader(self, epoch: int) -> DataLoader:
        """This rank's batches of ``epoch``: a DistributedSampler (one replica when alone) seeded by (seed, epoch)."""
        sampler = DistributedSampler(self.data, num_replicas=self.env.world_size, rank=self.env.rank, shuffle=True,
                                     seed=self.cfg.seed, drop_last=False)
        sampler.set_epoch(epoch)
        return DataLoader(self.data, batch_size=self.cfg.batch_size, sampler=sampler, collate_fn=list,
                          num_workers=self.cfg.num_workers)

    def _epoch(self, log) -> list[dict[str, float]]:
        cfg, model = self.cfg, self.model
        self.data.set_epoch(self.epoch)
        # seeded per (epoch, rank): a resumed epoch draws what the uninterrupted run would have drawn
        torch.manual_seed(cfg.seed + 1000 * self.epoch + self.env.rank)
        loader = self.loader(self.epoch)
        steps = math.ceil(len(loader) / cfg.accumulate)
        if cfg.max_steps_per_epoch:
            steps = min(steps, cfg.max_steps_per_epoch)
        lr = cfg.lr * (0.1 if cfg.lr_drop and self.epoch >= cfg.lr_drop else 1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        model.train()
        records = []
        bar = step_bar(steps, f"epoch {self.epoch + 1}/{cfg.epochs}", self.env.is_main)
        start = time.perf_counter()
        batches = iter(loader)
        try:
            for _ in range(steps):
                micro = list(itertools.islice(batches, cfg.accumulate))
                with self._autocast():      # the frozen networks run in fp16 too under AMP
                    prepared = [self.forward.prepare(b) for b in micro]
                terms = self._step(prepared)
                self.step += 1
                rec = {"epoch": self.epoch + 1, "step": self.step, "lr": lr, **terms,
                       "time": round(time.perf_counter() - start, 3)}
                records.append(rec)
                if self.step % cfg.log_interval == 0:
                    write_record(log, rec)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
                bar.update()
        finally:
            bar.close()
        return records

    def _step(self, micro: list[PreparedBatch]) -> dict[str, float]:
        """One optimizer step over this rank's micro-batches; returns the loss terms of the global batch."""
        counts = torch.tensor([sum(b.n_pair_pos for b in micro), sum(b.n_global_pos for b in micro)],
                              dtype=torch.float64, device=self.device)
        normalizers = distributed.all_reduce_sum(counts, self.env).float()
        sums = torch.zeros(len(STEP_TERMS), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(micro):
            sync = i + 1 == len(micro) or not isinstance(self.module, DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.module.no_sync():
                with self._autocast():
                    out = self.module(batch, normalizers)
                # DDP averages gradients over ranks; the step's loss is their sum
                self.scaler.scale(out["loss"] * self.env.world_size).backward()
            sums += torch.stack([out[k].detach().to(self.device, torch.float64) for k in STEP_TERMS])
        terms = dict(zip(STEP_TERMS, distributed.all_reduce_sum(sums, self.env).tolist()))
        if not math.isfinite(terms["loss"]):      # the same verdict on every rank
            raise HOIEdgeError(f"loss is {terms['loss']} at epoch {self.epoch + 1}, step {self.step + 1}; "
                               "lower --lr or check the annotations")
        self._optimizer_step()
        return terms

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

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


def _wrap_ddp(module: torch.nn.Module, device: torch.device) -> DistributedDataParallel:
    """DDP over the trainable parameters only (rank 0's are broadcast once, their gradients all-reduced); the
    frozen detector/CLIP weights and the buffers are neither broadcast nor reduced (every rank loaded the same)."""
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    frozen += [n for n, _ in module.named_buffers()]        # constants (vocabulary token ids, class masks)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, frozen)
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
