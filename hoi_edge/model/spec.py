"""``pipeline_spec``: the :class:`hoi_edge.spec.PipelineSpec` of a model, beside the model so that
training, export and every runtime derive sizes, thresholds and detector-family facts from one place."""

from __future__ import annotations

from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.clip_encoders import clip_image_size, clip_normalization
from hoi_edge.model.detectors import detector_class_names, family
from hoi_edge.spec import PipelineSpec

__all__ = ["pipeline_spec", "detector_class_names"]


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
