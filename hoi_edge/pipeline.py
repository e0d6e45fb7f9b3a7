"""The end-to-end HOI pipeline over any backend: preprocess -> detector -> instance selection ->
CLIP image encoder -> HOI head -> scoring against (baked) text embeddings.

A backend only has to run the three export units (:class:`StageRunner`); the
NumPy steps around them are shared, which is what makes an OpenVINO artifact
and the PyTorch model comparable stage by stage.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from hoi_edge.errors import VocabularyError
from hoi_edge.postprocess import (HOIDetection, Instances, LabelMap, ScoringParams, head_inputs,
                                  score_pairs, select_instances, top_detections)
from hoi_edge.preprocess import IMAGENET_MEAN, IMAGENET_STD, Letterbox, check_image, load_image
from hoi_edge.vocabulary import Vocabulary

STAGES = ("preprocess", "detector", "clip_image", "hoi_head", "postprocess")


class StageRunner(Protocol):
    """Runs the three export units on NumPy arrays (batch 1)."""

    name: str

    def detector(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def clip_image(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def hoi_head(self, features: np.ndarray, boxes: np.ndarray, valid: np.ndarray, human: np.ndarray,
                 patches: np.ndarray) -> np.ndarray: ...


@dataclass
class PipelineSpec:
    """Sizes, label space and scoring constants: what an artifact manifest must carry besides the networks."""

    detector_size: int
    clip_size: int
    clip_mean: tuple[float, ...]
    clip_std: tuple[float, ...]
    detector_classes: tuple[str, ...]
    max_instances: int
    box_score_threshold: float
    nms_threshold: float
    max_detections: int
    scoring: ScoringParams
    detector_mean: tuple[float, ...] = IMAGENET_MEAN
    detector_std: tuple[float, ...] = IMAGENET_STD

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


@dataclass
class Prediction:
    detections: list[HOIDetection]
    instances: Instances
    timings: dict[str, float] = field(default_factory=dict)


class HOIDetector:
    """``predict(image) -> list[HOIDetection]`` for a PyTorch checkpoint or an exported artifact."""

    def __init__(self, runner: StageRunner, spec: PipelineSpec, vocab: Vocabulary, text_embeddings: np.ndarray) -> None:
        text_embeddings = np.asarray(text_embeddings, dtype=np.float32)
        if text_embeddings.ndim != 2 or text_embeddings.shape[0] != vocab.num_classes:
            raise VocabularyError(
                f"text embeddings of shape {text_embeddings.shape} do not match vocabulary "
                f"'{vocab.name}' with {vocab.num_classes} classes"
            )
        self.runner, self.spec, self.vocab = runner, spec, vocab
        self.text_embeddings = text_embeddings
        self.manifest: Any = None          # the artifact's Manifest when loaded from an artifact folder
        self.labels = LabelMap.build(spec.detector_classes, vocab)
        self._hoi_object = vocab.hoi_object
        self._det_letterbox = Letterbox(spec.detector_size, spec.detector_mean, spec.detector_std)
        self._clip_letterbox = Letterbox(spec.clip_size, spec.clip_mean, spec.clip_std)

    @property
    def backend(self) -> str:
        return self.runner.name

    @classmethod
    def from_checkpoint(cls, path: str | Path, vocabulary: str | Path | Vocabulary | None = None,
                        device: str = "cpu") -> "HOIDetector":
        """Full-precision PyTorch model from a hoi-edge checkpoint; ``vocabulary`` re-targets the classes."""
        from hoi_edge.checkpoint import load_model
        from hoi_edge.runtime.torch_runner import detector_from_model

        return detector_from_model(load_model(path, vocabulary=vocabulary), device=device)

    @classmethod
    def from_artifact(cls, path: str | Path) -> "HOIDetector":
        """An exported artifact folder (OpenVINO, ONNX Runtime or ExecuTorch), backend chosen by its manifest."""
        from hoi_edge.runtime.artifact import load_artifact

        return load_artifact(path)

    def run(self, image: np.ndarray | str | Path) -> Prediction:
        t: dict[str, float] = {}
        start = time.perf_counter()
        if isinstance(image, (str, Path)):
            image = load_image(image)
        image = check_image(image)
        hw = image.shape[:2]
        det_in, clip_in = self._det_letterbox(image), self._clip_letterbox(image)
        t["preprocess"] = _lap(t, start)
        logits, boxes, feats = self.runner.detector(det_in)
        t["detector"] = _lap(t, start)
        global_emb, patches = self.runner.clip_image(clip_in)
        t["clip_image"] = _lap(t, start)
        s = self.spec
        inst = select_instances(logits, boxes, feats, self.labels, hw, s.detector_size, s.max_instances,
                                s.box_score_threshold, s.nms_threshold)
        pair_emb = self.runner.hoi_head(*head_inputs(inst, hw), patches)
        t["hoi_head"] = _lap(t, start)
        scores = score_pairs(pair_emb, global_emb, self.text_embeddings, inst, self._hoi_object, s.scoring)
        dets = top_detections(scores, inst, self.vocab, s.max_detections)
        t["postprocess"] = _lap(t, start)
        return Prediction(detections=dets, instances=inst, timings=t)

    def predict(self, image: np.ndarray | str | Path) -> list[HOIDetection]:
        return self.run(image).detections


def _lap(timings: dict[str, float], start: float) -> float:
    return time.perf_counter() - start - sum(timings.values())
