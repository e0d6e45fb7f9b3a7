"""One training forward pass: :meth:`hoi_edge.pipeline.HOIDetector.run` with gradients.

Same preprocessing, the same ``select_instances`` step after the frozen detector and the
same head inputs as inference, so training sees exactly the instances and box encoding the
exported pipeline sees. The detector and CLIP image tower run under ``no_grad``; the HOI head
and the classifier (with text embeddings of the learnable prompts) carry gradients.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.postprocess import LabelMap, head_inputs, select_instances
from hoi_edge.preprocess import Letterbox
from hoi_edge.runtime.torch_runner import pipeline_spec
from train.dataset import Sample
from train.losses import HOILoss
from train.targets import (MATCH_IOU, add_gt_instances, image_targets, pair_class_mask, pair_targets,
                           query_boxes_xyxy)


class TrainingForward:
    """``forward(samples, text) -> loss terms`` for a batch of :class:`Sample` (images of any sizes)."""

    def __init__(self, model: CLIP4HOI, loss: HOILoss, unseen: Sequence[int] = (), add_gt: bool = True,
                 match_iou: float = MATCH_IOU) -> None:
        self.model, self.loss, self.add_gt, self.match_iou = model, loss, add_gt, match_iou
        self.spec = pipeline_spec(model)
        self.labels = LabelMap.build(self.spec.detector_classes, model.vocab)
        s = self.spec
        self.det_letterbox = Letterbox(s.detector_size, s.detector_mean, s.detector_std)
        self.clip_letterbox = Letterbox(s.clip_size, s.clip_mean, s.clip_std)
        self.image_encoder = model.image_encoder()
        self.hoi_object = model.vocab.hoi_object
        self.num_classes = model.vocab.num_classes
        self.seen = np.ones(self.num_classes, bool)
        self.seen[np.asarray(list(unseen), dtype=np.int64)] = False

    @property
    def device(self) -> torch.device:
        return next(self.model.head.parameters()).device

    def __call__(self, samples: Sequence[Sample], text: torch.Tensor) -> dict[str, torch.Tensor]:
        dev, s = self.device, self.spec
        det_in = torch.from_numpy(np.concatenate([self.det_letterbox(x.image) for x in samples])).to(dev)
        clip_in = torch.from_numpy(np.concatenate([self.clip_letterbox(x.image) for x in samples])).to(dev)
        with torch.no_grad():
            logits, boxes, feats = (o.float().cpu().numpy() for o in self.model.detector(det_in))
            global_emb, patches = self.image_encoder(clip_in)
        head_in: list[list[np.ndarray]] = [[], [], [], []]
        targets, masks, image_t = [], [], []
        for b, sample in enumerate(samples):
            hw = sample.image.shape[:2]
            inst = select_instances(logits[b:b + 1], boxes[b:b + 1], feats[b:b + 1], self.labels, hw,
                                    s.detector_size, s.max_instances, s.box_score_threshold, s.nms_threshold)
            if self.add_gt:
                inst = add_gt_instances(inst, sample.target, query_boxes_xyxy(boxes[b], hw, s.detector_size),
                                        feats[b], self.labels, self.match_iou)
            for lst, arr in zip(head_in, head_inputs(inst, hw)):
                lst.append(arr)
            targets.append(pair_targets(inst, sample.target, self.num_classes, self.match_iou))
            masks.append(pair_class_mask(inst, self.hoi_object, self.seen))
            image_t.append(image_targets(sample.target, self.num_classes))
        features, inst_boxes, valid, human = (torch.from_numpy(np.concatenate(a)).to(dev) for a in head_in)
        pair_emb = self.model.head(features, inst_boxes, valid, human, patches)
        pair_logits, global_logits = self.model.classifier.logits(pair_emb, global_emb, text)
        return self.loss(pair_logits, global_logits,
                         torch.from_numpy(np.stack(targets)).to(dev), torch.from_numpy(np.stack(masks)).to(dev),
                         torch.from_numpy(np.stack(image_t)).to(dev), torch.from_numpy(self.seen).to(dev))
