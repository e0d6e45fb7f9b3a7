"""The end-to-end HOI pipeline over any backend: preprocess -> detector -> instance selection ->
CLIP image encoder -> HOI head -> scoring against (baked) text embeddings.

A backend only has to run the three export units (:class:`StageRunner`); the
NumPy steps around them are shared, which is what makes an OpenVINO artifact
and the PyTorch model comparable stage by stage.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from hoi_edge.errors import VocabularyError
from hoi_edge.postprocess import HOIDetection, Instances, LabelMap, head_inputs, score_pairs, top_detections
from hoi_edge.preprocess import check_image, load_image
from hoi_edge.spec import PipelineSpec  # noqa: F401  (re-exported: its historic home)
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
        self._det_letterbox = spec.detector_transform()
        self._clip_letterbox = spec.clip_transform()

    @property
    def backend(self) -> str:
        return self.runner.name

    @classmethod
    def from_checkpoint(cls, path: str | Path, vocabulary: str | Path | Vocabulary | None = None,
                        device: str = "cpu") -> "HOIDetector":
        """Full-precision PyTorch model from a hoi-edge checkpoint; ``vocabulary`` re-targets the classes."""
        return _constructor("checkpoint")(path, vocabulary=vocabulary, device=device)

    @classmethod
    def from_artifact(cls, path: str | Path, device: str | None = None, num_threads: int | None = None,
                      throughput: bool = False) -> "HOIDetector":
        """An exported artifact folder (OpenVINO, ONNX Runtime or ExecuTorch), backend chosen by its manifest.

        ``device``: one device for all units or ``detector=GPU,clip_image=NPU,hoi_head=CPU`` (OpenVINO device
        strings, ONNX Runtime providers in priority order, ExecuTorch ``xnnpack``; see
        :mod:`hoi_edge.runtime.devices`); ``throughput``: compile for pipelined streams (:mod:`hoi_edge.stream`)."""
        return _constructor("artifact")(path, num_threads=num_threads, device=device, throughput=throughput)

    def prepare(self, image: np.ndarray | str | Path) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """(original height and width, detector input, CLIP input) of one RGB image or image file."""
        if isinstance(image, (str, Path)):
            image = load_image(image)
        image = check_image(image)
        return image.shape[:2], self._det_letterbox(image), self._clip_letterbox(image)

    def select(self, hw: tuple[int, int], detector_out: tuple[np.ndarray, ...]) -> Instances:
        """The instances (humans and objects) the HOI head pairs up, from the detector's outputs."""
        return self.spec.select(*detector_out, self.labels, hw)

    def score(self, inst: Instances, pair_emb: np.ndarray, global_emb: np.ndarray) -> list[HOIDetection]:
        """Final triplets from the HOI head's pair embeddings and the CLIP global embedding."""
        s = self.spec
        scores = score_pairs(pair_emb, global_emb, self.text_embeddings, inst, self._hoi_object, s.scoring)
        return top_detections(scores, inst, self.vocab, s.max_detections)

    def run(self, image: np.ndarray | str | Path) -> Prediction:
        """One image through every stage in turn, timing each (:mod:`hoi_edge.stream` overlaps them)."""
        t: dict[str, float] = {}
        start = time.perf_counter()
        hw, det_in, clip_in = self.prepare(image)
        t["preprocess"] = _lap(t, start)
        det_out = self.runner.detector(det_in)
        t["detector"] = _lap(t, start)
        global_emb, patches = self.runner.clip_image(clip_in)
        t["clip_image"] = _lap(t, start)
        inst = self.select(hw, det_out)
        pair_emb = self.runner.hoi_head(*head_inputs(inst, hw), patches)
        t["hoi_head"] = _lap(t, start)
        dets = self.score(inst, pair_emb, global_emb)
        t["postprocess"] = _lap(t, start)
        return Prediction(detections=dets, instances=inst, timings=t)

    def predict(self, image: np.ndarray | str | Path) -> list[HOIDetection]:
        return self.run(image).detections


#: HOIDetector's constructors from files, as "module:function", resolved when called. They live in
#: :mod:`hoi_edge.runtime`, the layer above this one that imports it; naming them instead of importing
#: them keeps the dependency one-way (runtime -> pipeline), which tests/test_import_graph.py checks.
CONSTRUCTORS = {"checkpoint": "hoi_edge.runtime.torch_runner:detector_from_checkpoint",
                "artifact": "hoi_edge.runtime.artifact:load_artifact"}


def _constructor(kind: str) -> Callable[..., HOIDetector]:
    module, _, name = CONSTRUCTORS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def _lap(timings: dict[str, float], start: float) -> float:
    return time.perf_counter() - start - sum(timings.values())
