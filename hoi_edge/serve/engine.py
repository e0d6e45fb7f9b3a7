"""The one detector a server shares between its streams and its requests, and its live vocabulary.

Every stream and every request runs on the same compiled networks (OpenVINO's throughput streams behind
``AsyncInferQueue``; one worker per network for the other runtimes), through the pipelined path of
:mod:`hoi_edge.pipeline.stream`, whose ``submit`` is safe to call from several threads at once.

The vocabulary is swapped whole (:meth:`HOIPipeline.set_text_bank`): frames in flight finish with the bank
they started with, the next frames use the new one. Baking needs the text encoder: a ``--model``
checkpoint has it; an artifact has only its baked bank unless the checkpoint it was exported from is given
(``--text-model``). :attr:`Engine.rebake_unavailable` says why when it cannot.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hoi_edge.core.errors import VocabularyError
from hoi_edge.data.vocabulary import Vocabulary, vocabulary_from_text, vocabulary_lines
from hoi_edge.pipeline.detector import HOIPipeline, Prediction, TextBank
from hoi_edge.pipeline.stream import run_concurrent

if TYPE_CHECKING:
    from compress.bake import TextBaker
    from hoi_edge.serve.config import ServeConfig

MODEL_VERSION = "1"


@dataclass(frozen=True)
class VocabularyInfo:
    name: str
    fingerprint: str
    pairs: list[str]
    editable: bool
    reason: str | None          # why it is not editable


class Engine:
    """``detect(image)`` and ``set_vocabulary(text)`` over one shared detector."""

    def __init__(self, detector: HOIPipeline, baker: TextBaker | None = None, name: str = "hoi-edge",
                 rebake_unavailable: str | None = None) -> None:
        self.detector, self.baker, self.name = detector, baker, name
        self.rebake_unavailable = rebake_unavailable if baker is None else None
        if baker is None and rebake_unavailable is None:
            self.rebake_unavailable = "this server was started without a text encoder"
        self.version = MODEL_VERSION
        self.rebakes = 0
        self._swap = threading.Lock()

    @property
    def backend(self) -> str:
        return self.detector.backend

    def detect(self, image: np.ndarray) -> Prediction:
        """One RGB image, on the shared networks (safe beside the streams and other requests)."""
        return run_concurrent(self.detector, image)

    def vocabulary(self) -> VocabularyInfo:
        vocab = self.detector.vocab
        return VocabularyInfo(vocab.name, vocab.fingerprint(), vocabulary_lines(vocab),
                              self.rebake_unavailable is None, self.rebake_unavailable)

    def set_vocabulary(self, text: str) -> Vocabulary:
        """Parse ``text`` ('verb object' pairs or a vocabulary's JSON), check it as ``hoi-edge bake`` does, bake
        its text embeddings and swap them in; a refused vocabulary changes nothing."""
        if self.baker is None:
            raise VocabularyError(f"the vocabulary cannot change: {self.rebake_unavailable}")
        vocab = vocabulary_from_text(text, self.detector.spec.detector_classes)
        vocab, embeddings = self.baker.bake(vocab)
        bank = TextBank.build(vocab, embeddings, self.detector.spec.detector_classes)
        with self._swap:
            self.detector.set_text_bank(bank)
            self.rebakes += 1
        return vocab

    def close(self) -> None:
        close = getattr(self.detector.runner, "close", None)
        if close is not None:
            close()


def open_engine(config: ServeConfig) -> Engine:
    """Load what ``config`` names, compiled for several frames in flight, with a text encoder where one exists."""
    from hoi_edge.loader import open_detector

    detector = open_detector(model=config.model, artifact=config.artifact, vocabulary=config.vocab,
                             device=config.device, clip_weights=config.clip_weights,
                             detector_weights=config.detector_weights, throughput=True)
    baker, reason = None, None
    if detector.end_to_end:
        reason = ("an end-to-end artifact has its vocabulary built into its one network: re-bake it with "
                  "'hoi-edge bake' and restart the server")
    elif config.artifact is not None:
        if config.text_model:
            from compress.bake import TextBaker

            baker = TextBaker.for_artifact(config.artifact, detector.manifest, config.text_model)
        else:
            reason = ("the artifact holds only its baked text embeddings; start the server with --text-model "
                      "CHECKPOINT (the checkpoint it was exported from) to type new interactions")
    else:
        from compress.bake import TextBaker

        baker = TextBaker(detector.runner.model, detector.spec.detector_classes)
    return Engine(detector, baker, name=config.model_name, rebake_unavailable=reason)
