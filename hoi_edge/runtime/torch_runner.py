"""The full-precision PyTorch backend: the reference every artifact is compared with."""

from __future__ import annotations

import numpy as np
import torch

from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import clip_image_size, clip_normalization
from hoi_edge.model.coco import COCO91_NAMES
from hoi_edge.pipeline import HOIDetector, PipelineSpec


class TorchRunner:
    name = "pytorch"

    def __init__(self, model: CLIP4HOI, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self._clip_image = model.image_encoder()

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    @torch.inference_mode()
    def detector(self, images: np.ndarray):
        return tuple(o.float().cpu().numpy() for o in self.model.detector(self._t(images)))

    @torch.inference_mode()
    def clip_image(self, images: np.ndarray):
        return tuple(o.float().cpu().numpy() for o in self._clip_image(self._t(images)))

    @torch.inference_mode()
    def hoi_head(self, features, boxes, valid, human, patches):
        out = self.model.head(self._t(features), self._t(boxes), self._t(valid), self._t(human), self._t(patches))
        return out.float().cpu().numpy()


def pipeline_spec(model: CLIP4HOI) -> PipelineSpec:
    cfg = model.cfg
    mean, std = clip_normalization(model.clip)
    return PipelineSpec(
        detector_size=cfg.detector.image_size, clip_size=clip_image_size(model.clip), clip_mean=mean, clip_std=std,
        detector_classes=detector_class_names(cfg.detector.num_classes), max_instances=cfg.hoi.max_instances,
        box_score_threshold=cfg.hoi.box_score_threshold, nms_threshold=cfg.hoi.nms_threshold,
        max_detections=cfg.hoi.max_detections, scoring=model.classifier.scoring_params(),
    )


def detector_class_names(num_classes: int) -> tuple[str, ...]:
    """Class names of the detector's logits (COCO-91 id space, as the official DETR)."""
    return tuple(COCO91_NAMES[i] if i < len(COCO91_NAMES) else "N/A" for i in range(num_classes))


@torch.inference_mode()
def detector_from_model(model: CLIP4HOI, device: str = "cpu") -> HOIDetector:
    runner = TorchRunner(model, device)
    text = model.text_embeddings().float().cpu().numpy()
    return HOIDetector(runner, pipeline_spec(model), model.vocab, text)
