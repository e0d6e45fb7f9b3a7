"""One training forward pass: :meth:`hoi_edge.pipeline.detector.HOIPipeline.run` with gradients, in two stages.

1. :meth:`TrainingForward.prepare` (no gradients): the frozen detector and CLIP image tower
   (:class:`FrozenEncoder`; or their cached outputs, :mod:`train.feature_cache`), then the same
   ``select`` step, GT instances and head inputs as inference, and the targets. Training therefore
   sees exactly the instances and box encoding the exported pipeline sees.
2. :class:`HeadLoss` (gradients): the HOI head, the classifier with the text embeddings of the
   learnable prompts, and the loss. This module is what DDP wraps: it holds every trainable
   parameter and nothing else is differentiated.

Splitting them lets the trainer know the number of positives of a whole optimizer step (all
micro-batches, all ranks) before any loss is computed, so the loss is normalised over the global
batch, as one process with the whole batch would normalise it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence, Union

import numpy as np
import torch
from torch import nn

from hoi_edge.data.hico_json import HicoImage
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.pipeline.postprocess import LabelMap, head_inputs
from hoi_edge.runtime.torch_runner import pipeline_spec
from train.dataset import Sample
from train.losses import HOILoss
from train.targets import MATCH_IOU, add_gt_instances, image_targets, pair_class_mask, pair_targets, query_boxes_xyxy


@dataclass
class FrozenOutputs:
    """The frozen networks' outputs for one image (float32): what ``--cache-features`` stores."""

    det_scores: np.ndarray       # (N, C') detector logits/scores per candidate
    det_boxes: np.ndarray        # (N, 4) cx,cy,w,h of the network input
    det_features: np.ndarray     # (N, D) per-candidate features
    clip_global: np.ndarray      # (E,) L2-normalised global CLIP embedding
    clip_patches: np.ndarray     # (P, E) L2-normalised patch tokens in the joint space


FROZEN_FIELDS = tuple(f.name for f in fields(FrozenOutputs))


@dataclass
class CachedSample:
    """A training sample whose image was replaced by its cached :class:`FrozenOutputs`."""

    frozen: FrozenOutputs
    image_hw: tuple[int, int]
    target: HicoImage


Item = Union[Sample, CachedSample]


class FrozenEncoder:
    """images (RGB uint8, any sizes) -> one :class:`FrozenOutputs` each, through the frozen detector and CLIP."""

    def __init__(self, model: CLIP4HOI) -> None:
        self.model = model
        spec = pipeline_spec(model)
        self.det_transform = spec.detector_transform()
        self.clip_transform = spec.clip_transform()
        self.image_encoder = model.image_encoder()

    @torch.no_grad()
    def __call__(self, images: Sequence[np.ndarray]) -> list[FrozenOutputs]:
        dev = next(self.model.head.parameters()).device
        det_in = torch.from_numpy(np.concatenate([self.det_transform(x) for x in images])).to(dev)
        clip_in = torch.from_numpy(np.concatenate([self.clip_transform(x) for x in images])).to(dev)
        det = [o.float().cpu().numpy() for o in self.model.detector(det_in)]
        glob, patches = (o.float().cpu().numpy() for o in self.image_encoder(clip_in))
        return [FrozenOutputs(det[0][b], det[1][b], det[2][b], glob[b], patches[b]) for b in range(len(images))]


@dataclass
class PreparedBatch:
    """Head inputs and targets of one micro-batch (tensors on the training device)."""

    features: torch.Tensor       # (B,K,D)
    boxes: torch.Tensor          # (B,K,...)
    valid: torch.Tensor          # (B,K)
    human: torch.Tensor          # (B,K)
    patches: torch.Tensor        # (B,P,E)
    global_emb: torch.Tensor     # (B,E)
    pair_targets: torch.Tensor   # (B,K*K,C)
    pair_mask: torch.Tensor      # (B,K*K,C) bool
    image_targets: torch.Tensor  # (B,C)
    n_pair_pos: float            # positives among the masked pairwise entries
    n_global_pos: float          # positives among the seen global entries

    def __len__(self) -> int:
        return int(self.features.shape[0])


class TrainingForward:
    """``prepare(batch)`` -> :class:`PreparedBatch`; ``self(batch, text)`` -> loss terms (one process, one batch).

    A batch is a list of :class:`Sample` (images) or :class:`CachedSample` (cached frozen outputs).
    """

    def __init__(self, model: CLIP4HOI, loss: HOILoss, unseen: Sequence[int] = (), add_gt: bool = True,
                 match_iou: float = MATCH_IOU) -> None:
        self.model, self.loss, self.add_gt, self.match_iou = model, loss, add_gt, match_iou
        self.spec = pipeline_spec(model)
        self.labels = LabelMap.build(self.spec.detector_classes, model.vocab)
        self.encoder = FrozenEncoder(model)
        self.hoi_object = model.vocab.hoi_object
        self.num_classes = model.vocab.num_classes
        self.seen = np.ones(self.num_classes, bool)
        self.seen[np.asarray(list(unseen), dtype=np.int64)] = False
        self.head_loss = HeadLoss(model, loss, self.seen)

    @property
    def device(self) -> torch.device:
        return next(self.model.head.parameters()).device

    def frozen(self, batch: Sequence[Item]) -> list[FrozenOutputs]:
        """Frozen outputs of every item: computed for images, taken as they are from cached samples."""
        images = [x for x in batch if isinstance(x, Sample)]
        computed = iter(self.encoder([x.image for x in images]) if images else [])
        return [next(computed) if isinstance(x, Sample) else x.frozen for x in batch]

    def prepare(self, batch: Sequence[Item]) -> PreparedBatch:
        """Frozen outputs -> instances (+ missed GT boxes) -> head inputs and targets; no gradients anywhere."""
        s, dev = self.spec, self.device
        outs = self.frozen(batch)
        head_in: list[list[np.ndarray]] = [[], [], [], []]
        targets, masks, image_t = [], [], []
        for item, out in zip(batch, outs):
            hw = tuple(item.image.shape[:2]) if isinstance(item, Sample) else tuple(item.image_hw)
            inst = s.select(out.det_scores[None], out.det_boxes[None], out.det_features[None], self.labels, hw)
            if self.add_gt:
                inst = add_gt_instances(inst, item.target,
                                        query_boxes_xyxy(out.det_boxes, hw, s.detector_size, s.detector_resize),
                                        out.det_features, self.labels, self.match_iou)
            for lst, arr in zip(head_in, head_inputs(inst, hw)):
                lst.append(arr)
            targets.append(pair_targets(inst, item.target, self.num_classes, self.match_iou))
            masks.append(pair_class_mask(inst, self.hoi_object, self.seen))
            image_t.append(image_targets(item.target, self.num_classes))
        pair_t, pair_m, img_t = np.stack(targets), np.stack(masks), np.stack(image_t)

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(dev)

        features, boxes, valid, human = (tensor(np.concatenate(a)) for a in head_in)
        return PreparedBatch(features, boxes, valid, human,
                             patches=tensor(np.stack([o.clip_patches for o in outs])),
                             global_emb=tensor(np.stack([o.clip_global for o in outs])),
                             pair_targets=tensor(pair_t), pair_mask=tensor(pair_m), image_targets=tensor(img_t),
                             n_pair_pos=float(pair_t[pair_m].sum(dtype=np.float64)),
                             n_global_pos=float(img_t[:, self.seen].sum(dtype=np.float64)))

    def __call__(self, batch: Sequence[Item], text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss terms of one batch normalised by its own positives (``text``: precomputed text embeddings)."""
        return self.head_loss(self.prepare(batch), None, text)


class HeadLoss(nn.Module):
    """Everything with gradients: text embeddings of the prompts, HOI head, classifier logits, loss.

    ``forward(batch, normalizers)``: ``normalizers`` (2,) = pairwise and global positives of the
    whole optimizer step (all micro-batches, all ranks), or None for this batch's own counts. The
    trainer multiplies the returned ``loss`` by the world size before ``backward``, as DDP averages
    gradients over ranks while the step's loss is a sum over the global batch.
    """

    def __init__(self, model: CLIP4HOI, loss: HOILoss, seen: np.ndarray) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.register_buffer("seen", torch.from_numpy(seen.copy()), persistent=False)

    def forward(self, batch: PreparedBatch, normalizers: torch.Tensor | None = None,
                text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        m = self.model
        if text is None:
            text = m.text_embeddings()
        pair_emb = m.head(batch.features, batch.boxes, batch.valid, batch.human, batch.patches)
        pair_logits, global_logits = m.classifier.logits(pair_emb, batch.global_emb, text)
        return self.loss(pair_logits, global_logits, batch.pair_targets, batch.pair_mask, batch.image_targets,
                         self.seen.to(pair_logits.device), normalizers)
