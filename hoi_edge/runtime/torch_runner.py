"""The full-precision PyTorch backend: the reference every artifact is compared with."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import clip_image_size, clip_normalization
from hoi_edge.model.detectors import detector_class_names, family
from hoi_edge.pipeline.detector import HOIPipeline
from hoi_edge.pipeline.spec import PipelineSpec
from hoi_edge.runtime.devices import check_torch_device
from hoi_edge.weights.checkpoint import load_model


def pipeline_spec(model: CLIP4HOI) -> PipelineSpec:
    """The pipeline constants of ``model``; thresholds left None in the config take the detector family's default."""
    cfg = model.cfg
    fam = family(cfg.detector)
    mean, std = clip_normalization(model.clip)
    hoi = cfg.hoi
    return PipelineSpec(
        detector_size=cfg.detector.image_size, clip_size=clip_image_size(model.clip), clip_mean=mean, clip_std=std,
        detector_classes=detector_class_names(cfg.detector), max_instances=hoi.max_instances,
        box_score_threshold=fam.box_score_threshold if hoi.box_score_threshold is None else hoi.box_score_threshold,
        nms_threshold=fam.nms_threshold if hoi.nms_threshold is None else hoi.nms_threshold,
        nms_candidates=fam.nms_candidates,
        max_detections=hoi.max_detections, scoring=model.classifier.scoring_params(),
        detector_mean=tuple(fam.mean), detector_std=tuple(fam.std), detector_family=fam.name,
        detector_score_kind=fam.score_kind, detector_resize=fam.resize, detector_channels=fam.channels,
    )


class TorchRunner:
    """The three units of an in-memory CLIP4HOI. Safe to call from several threads (several streams of a
    server): calls of one unit run one at a time, since the CLIP image encoder switches a flag of the shared
    CLIP tower for the length of its call; different units still overlap."""

    name = "pytorch"

    def __init__(self, model: CLIP4HOI, device: str = "cpu") -> None:
        self.device = torch.device(check_torch_device(device))   # 'GPU' or a missing CUDA: one line, not a traceback
        self.model = model.to(self.device).eval()
        self._clip_image = model.image_encoder()
        self._locks = {unit: threading.Lock() for unit in EXPORT_UNITS}

    def _t(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    @torch.inference_mode()
    def detector(self, images: np.ndarray):
        with self._locks["detector"]:
            return tuple(o.float().cpu().numpy() for o in self.model.detector(self._t(images)))

    @torch.inference_mode()
    def clip_image(self, images: np.ndarray):
        with self._locks["clip_image"]:
            return tuple(o.float().cpu().numpy() for o in self._clip_image(self._t(images)))

    @torch.inference_mode()
    def hoi_head(self, features, boxes, valid, human, patches):
        with self._locks["hoi_head"]:
            out = self.model.head(self._t(features), self._t(boxes), self._t(valid), self._t(human),
                                  self._t(patches))
        return out.float().cpu().numpy()


def detector_from_checkpoint(path: str | Path, vocabulary: str | Path | Vocabulary | None = None,
                             device: str = "cpu", factory: type[HOIPipeline] = HOIPipeline) -> HOIPipeline:
    """:meth:`hoi_edge.loader.HOIDetector.from_checkpoint`: a hoi-edge checkpoint (or 'default', the default
    model as in every command) on the PyTorch backend; a model with random-init parts says so on stderr."""
    from hoi_edge.core.provenance import random_init_parts, warn_random_init
    from hoi_edge.weights.defaults import resolve_checkpoint

    device = check_torch_device(device)          # a wrong device fails before seconds of model loading
    path = resolve_checkpoint(path)
    model = load_model(path, vocabulary=vocabulary)
    warn_random_init(f"checkpoint {path}", random_init_parts(model.cfg))
    return detector_from_model(model, device=device, factory=factory)


@torch.inference_mode()
def detector_from_model(model: CLIP4HOI, device: str = "cpu", factory: type[HOIPipeline] = HOIPipeline
                        ) -> HOIPipeline:
    """``model`` (in memory) on the PyTorch backend, as ``factory`` (HOIPipeline, or the loader's HOIDetector)."""
    runner = TorchRunner(model, device)
    text = model.text_embeddings().float().cpu().numpy()
    return factory(runner, pipeline_spec(model), model.vocab, text)
