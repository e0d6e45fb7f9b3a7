"""Load an exported artifact folder into an :class:`HOIDetector`, backend chosen by the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hoi_edge.errors import ArtifactError, VocabularyError
from hoi_edge.pipeline import HOIDetector, StageRunner
from hoi_edge.runtime.manifest import TEXT_EMBEDDINGS, VOCABULARY, Manifest
from hoi_edge.vocabulary import Vocabulary

UNIT_NAMES = ("detector", "clip_image", "hoi_head")


def make_runner(manifest: Manifest, folder: Path, num_threads: int | None = None) -> StageRunner:
    if manifest.target == "openvino":
        from hoi_edge.runtime.openvino_runner import OpenVINORunner as runner_cls
    elif manifest.target == "onnx":
        from hoi_edge.runtime.onnx_runner import ONNXRunner as runner_cls
    elif manifest.target == "executorch":
        from hoi_edge.runtime.executorch_runner import ExecuTorchRunner as runner_cls
    else:
        raise ArtifactError(f"{folder}: unknown target '{manifest.target}'")
    return runner_cls(folder, manifest, num_threads=num_threads)


def load_artifact(folder: str | Path, num_threads: int | None = None) -> HOIDetector:
    folder = Path(folder)
    manifest = Manifest.read(folder)
    missing_units = set(UNIT_NAMES) - set(manifest.units)
    if missing_units:
        raise ArtifactError(f"{folder}: manifest lacks units {sorted(missing_units)}")
    vocab = Vocabulary.from_dict(json.loads((folder / VOCABULARY).read_text()), source=str(folder / VOCABULARY))
    if vocab.fingerprint() != manifest.vocabulary_fingerprint:
        raise VocabularyError(f"{folder}: {VOCABULARY} does not match the vocabulary the embeddings were baked for")
    try:
        text = np.load(folder / TEXT_EMBEDDINGS)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{folder / TEXT_EMBEDDINGS} is unreadable: {exc}") from exc
    runner = make_runner(manifest, folder, num_threads)
    detector = HOIDetector(runner, manifest.spec, vocab, text)
    detector.manifest = manifest
    return detector
