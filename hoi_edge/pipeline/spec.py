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
        """The spec a manifest stores; ``ValueError``/``TypeError`` for a value of the wrong kind (a hand-edited
        or damaged manifest), so it fails on load, not in the middle of a frame."""
        d = dict(data)
        d["scoring"] = ScoringParams(**d["scoring"])
        for key in ("clip_mean", "clip_std", "detector_classes", "detector_mean", "detector_std"):
            if key in d:
                d[key] = tuple(d[key])
        spec = cls(**d)
        _check_values(spec)
        return spec

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


def _number(value: Any) -> bool:
    return type(value) in (int, float) and bool(np.isfinite(value))


def _check_values(spec: PipelineSpec) -> None:
    for name in ("detector_size", "clip_size", "max_instances", "max_detections"):
        value = getattr(spec, name)
        if type(value) is not int or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if spec.nms_candidates is not None and (type(spec.nms_candidates) is not int or spec.nms_candidates < 1):
        raise ValueError(f"nms_candidates must be a positive integer or null, got {spec.nms_candidates!r}")
    for name in ("box_score_threshold", "nms_threshold"):
        value = getattr(spec, name)
        if not (_number(value) or (value is None and name == "nms_threshold")):
            raise ValueError(f"{name} must be a number, got {value!r}")
    for name in ("clip_mean", "clip_std", "detector_mean", "detector_std"):
        value = getattr(spec, name)
        if len(value) != 3 or not all(_number(v) for v in value):
            raise ValueError(f"{name} must be 3 numbers, got {list(value)!r}")
    if not spec.detector_classes or not all(isinstance(c, str) for c in spec.detector_classes):
        raise ValueError("detector_classes must be a non-empty list of names")
    for name in ("detector_family", "detector_score_kind", "detector_resize", "detector_channels"):
        if not isinstance(getattr(spec, name), str):
            raise ValueError(f"{name} must be a name, got {getattr(spec, name)!r}")
    bad = {k: v for k, v in spec.scoring.to_dict().items() if not _number(v)}
    if bad:
        raise ValueError(f"scoring values must be numbers, got {bad}")
