"""What a pipeline needs besides the networks: sizes, input transforms, label space, detector-family facts
and scoring constants. Stored in every artifact manifest; built from a model by
:func:`hoi_edge.runtime.torch_runner.pipeline_spec`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from hoi_edge.core.conventions import IMAGENET_MEAN, IMAGENET_STD, LETTERBOX, SOFTMAX_NO_OBJECT
from hoi_edge.pipeline.postprocess import Instances, LabelMap, ScoringParams, select_instances
from hoi_edge.pipeline.preprocess import Letterbox


@dataclass
class PipelineSpec:
    """Sizes, label space and scoring constants: what an artifact manifest must carry besides the networks.

    The ``detector_*`` family facts default to DETR's, so manifests written before NanoDet load as DETR.
    ``nms_threshold`` None means the detector's output needs no NMS.
    """

    detector_size: int
    clip_size: int
    clip_mean: tuple[float, ...]
    clip_std: tuple[float, ...]
    detector_classes: tuple[str, ...]
    max_instances: int
    box_score_threshold: float
    nms_threshold: float | None
    max_detections: int
    scoring: ScoringParams
    detector_mean: tuple[float, ...] = IMAGENET_MEAN
    detector_std: tuple[float, ...] = IMAGENET_STD
    detector_family: str = "detr"
    detector_score_kind: str = SOFTMAX_NO_OBJECT
    detector_resize: str = LETTERBOX
    detector_channels: str = "rgb"
    nms_candidates: int | None = None       # the best M thresholded candidates enter NMS (None: all)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PipelineSpec":
        d = dict(data)
        d["scoring"] = ScoringParams(**d["scoring"])
        for key in ("clip_mean", "clip_std", "detector_classes", "detector_mean", "detector_std"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def detector_transform(self) -> Letterbox:
        return Letterbox(self.detector_size, self.detector_mean, self.detector_std, self.detector_resize,
                         self.detector_channels)

    def clip_transform(self) -> Letterbox:
        return Letterbox(self.clip_size, self.clip_mean, self.clip_std)

    def select(self, scores: np.ndarray, boxes: np.ndarray, features: np.ndarray, labels: LabelMap,
               image_hw: tuple[int, int]) -> Instances:
        """:func:`hoi_edge.pipeline.postprocess.select_instances` with this pipeline's detector facts and thresholds."""
        return select_instances(scores, boxes, features, labels, image_hw, self.detector_size, self.max_instances,
                                self.box_score_threshold, self.nms_threshold, score_kind=self.detector_score_kind,
                                resize=self.detector_resize, max_candidates=self.nms_candidates)
