"""The HOI pipeline over any backend: preprocess -> detector -> instance selection ->
CLIP image encoder -> HOI head -> scoring against (baked) text embeddings.

A backend only has to run the three export units (:class:`StageRunner`); the
NumPy steps around them are shared, which is what makes an OpenVINO artifact
and the PyTorch model comparable stage by stage. An end-to-end artifact (one network, image in,
triplets out) runs behind the same API (:mod:`hoi_edge.pipeline.end_to_end`).

:class:`HOIPipeline` is built from a runner; opening a checkpoint or an artifact folder is the loader's
job (:class:`hoi_edge.loader.HOIDetector`, the public class), which sits above the runtime, so this
module imports no runtime.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.end_to_end import run_network
from hoi_edge.pipeline.postprocess import HOIDetection, Instances, LabelMap, head_inputs, score_pairs, top_detections
from hoi_edge.pipeline.preprocess import check_image, load_image
from hoi_edge.pipeline.spec import PipelineSpec

STAGES = ("preprocess", "detector", "clip_image", "hoi_head", "postprocess")


class StageRunner(Protocol):
    """Runs the three export units on NumPy arrays (batch 1)."""

    name: str

    def detector(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def clip_image(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def hoi_head(self, features: np.ndarray, boxes: np.ndarray, valid: np.ndarray, human: np.ndarray,
                 patches: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class TextBank:
    """The vocabulary side of scoring: the vocabulary, its (C, E) text embeddings, the detector-class ->
    object map and each class's object. One object swapped as a whole (:meth:`HOIPipeline.set_text_bank`),
    and captured once per frame, so a frame in flight while a server re-bakes its vocabulary is scored
    entirely with the old bank or entirely with the new one, never with a mix of the two."""

    vocab: Vocabulary
    embeddings: np.ndarray
    labels: LabelMap
    hoi_object: np.ndarray

    @classmethod
    def build(cls, vocab: Vocabulary, text_embeddings: np.ndarray, detector_classes: Sequence[str]) -> "TextBank":
        """Checks the embeddings against the vocabulary and the vocabulary against the detector's classes
        (:meth:`LabelMap.build`: the check ``hoi-edge bake`` makes, with its message)."""
        text = np.array(text_embeddings, dtype=np.float32)       # a copy of its own, made read-only below
        if text.ndim != 2 or text.shape[0] != vocab.num_classes:
            raise VocabularyError(
                f"text embeddings of shape {text.shape} do not match vocabulary "
                f"'{vocab.name}' with {vocab.num_classes} classes"
            )
        text.setflags(write=False)
        return cls(vocab, text, LabelMap.build(detector_classes, vocab), vocab.hoi_object)


@dataclass
class Prediction:
    detections: list[HOIDetection]
    instances: Instances
    timings: dict[str, float] = field(default_factory=dict)
    # the detector unit's raw outputs (three-unit layout): what INT8 box AP scores before the pipeline's cut
    detector_outputs: tuple[np.ndarray, ...] | None = None


class HOIPipeline:
    """``predict(image) -> list[HOIDetection]`` over a runner of the three export units (or, with
    ``end_to_end``, of the one end-to-end network)."""

    def __init__(self, runner: StageRunner, spec: PipelineSpec, vocab: Vocabulary, text_embeddings: np.ndarray,
                 end_to_end: bool = False) -> None:
        self.runner, self.spec = runner, spec
        self.end_to_end = end_to_end
        self.bank = TextBank.build(vocab, text_embeddings, spec.detector_classes)
        self.manifest: Any = None          # the artifact's Manifest when loaded from an artifact folder
        self._det_letterbox = spec.detector_transform()
        self._clip_letterbox = spec.clip_transform()

    @property
    def vocab(self) -> Vocabulary:
        return self.bank.vocab

    @property
    def text_embeddings(self) -> np.ndarray:
        return self.bank.embeddings

    @property
    def labels(self) -> LabelMap:
        return self.bank.labels

    def set_text_bank(self, bank: TextBank) -> None:
        """Swap the vocabulary for the next frames (one reference assignment: atomic for frames in flight,
        each of which keeps the bank it started with). An end-to-end network has its vocabulary built in."""
        if self.end_to_end:
            raise VocabularyError("an end-to-end artifact has its vocabulary built into its one network; "
                                  "re-bake it with 'hoi-edge bake' and reload it")
        if list(bank.labels.to_object.shape) != [len(self.spec.detector_classes)]:
            raise VocabularyError("the text bank was built for another detector's classes")
        self.bank = bank

    @property
    def backend(self) -> str:
        return self.runner.name

    @property
    def pipelinable(self) -> bool:
        """Whether :mod:`hoi_edge.pipeline.stream` can overlap stages: one end-to-end network has none."""
        return not self.end_to_end

    def prepare(self, image: np.ndarray | str | Path) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
        """(original height and width, detector input, CLIP input) of one RGB image or image file."""
        if isinstance(image, (str, Path)):
            image = load_image(image)
        image = check_image(image)
        return image.shape[:2], self._det_letterbox(image), self._clip_letterbox(image)

    def select(self, hw: tuple[int, int], detector_out: tuple[np.ndarray, ...],
               bank: TextBank | None = None) -> Instances:
        """The instances (humans and objects) the HOI head pairs up, from the detector's outputs; ``bank``: the
        text bank the frame started with (default: the current one)."""
        return self.spec.select(*detector_out, (bank or self.bank).labels, hw)

    def score(self, inst: Instances, pair_emb: np.ndarray, global_emb: np.ndarray,
              bank: TextBank | None = None) -> list[HOIDetection]:
        """Final triplets from the HOI head's pair embeddings and the CLIP global embedding."""
        s, bank = self.spec, bank or self.bank
        scores = score_pairs(pair_emb, global_emb, bank.embeddings, inst, bank.hoi_object, s.scoring)
        return top_detections(scores, inst, bank.vocab, s.max_detections)

    def run(self, image: np.ndarray | str | Path) -> Prediction:
        """One image through every stage in turn, timing each (:mod:`hoi_edge.pipeline.stream` overlaps them)."""
        bank = self.bank                    # one bank for the whole frame, even if it is swapped meanwhile
        if self.end_to_end:
            dets, inst, timings = run_network(self.runner, self.spec, bank.vocab, bank.labels, image)
            return Prediction(detections=dets, instances=inst, timings=timings)
        t: dict[str, float] = {}
        start = time.perf_counter()
        hw, det_in, clip_in = self.prepare(image)
        t["preprocess"] = _lap(t, start)
        det_out = self.runner.detector(det_in)
        t["detector"] = _lap(t, start)
        global_emb, patches = self.runner.clip_image(clip_in)
        t["clip_image"] = _lap(t, start)
        inst = self.select(hw, det_out, bank)
        pair_emb = self.runner.hoi_head(*head_inputs(inst, hw), patches)
        t["hoi_head"] = _lap(t, start)
        dets = self.score(inst, pair_emb, global_emb, bank)
        t["postprocess"] = _lap(t, start)
        return Prediction(detections=dets, instances=inst, timings=t, detector_outputs=tuple(det_out))

    def predict(self, image: np.ndarray | str | Path) -> list[HOIDetection]:
        return self.run(image).detections


def _lap(timings: dict[str, float], start: float) -> float:
    return time.perf_counter() - start - sum(timings.values())
