"""Load an exported artifact folder into an :class:`HOIDetector`, backend chosen by the manifest."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from hoi_edge.errors import ArtifactError, VocabularyError
from hoi_edge.jsonio import read_json_object
from hoi_edge.pipeline import HOIDetector, StageRunner
from hoi_edge.runtime.manifest import TEXT_EMBEDDINGS, VOCABULARY, Manifest
from hoi_edge.vocabulary import Vocabulary

UNIT_NAMES = ("detector", "clip_image", "hoi_head")
REBAKE_HINT = "re-run 'hoi-edge bake --artifact ... --model ... --vocab ...'"


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


def read_text_bank(folder: Path, manifest: Manifest) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary and text embeddings, checked against the manifest (fingerprint, sha256, width).

    The text bank is the part a re-bake rewrites; these checks catch a re-bake interrupted between
    its file replacements, or files copied in from another artifact.
    """
    data = read_json_object(folder / VOCABULARY, "artifact vocabulary", ArtifactError)
    vocab = Vocabulary.from_dict(data, source=str(folder / VOCABULARY))
    if vocab.fingerprint() != manifest.vocabulary_fingerprint:
        raise VocabularyError(f"{folder / VOCABULARY} does not match the vocabulary the embeddings were baked for "
                              f"(fingerprint differs from the manifest's); {REBAKE_HINT}")
    path = folder / TEXT_EMBEDDINGS
    raw = path.read_bytes()
    expected = manifest.text_embeddings_sha256
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        raise ArtifactError(f"{path} does not match the manifest (sha256 differs): the text bank was modified or a "
                            f"re-bake was interrupted; {REBAKE_HINT}")
    try:
        text = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable: {exc}") from exc
    if text.ndim != 2:
        raise ArtifactError(f"{path} has shape {list(text.shape)}; expected a (classes, embedding) matrix")
    width = pair_embedding_width(manifest)
    if width is not None and text.shape[1] != width:
        raise ArtifactError(f"{path} has shape {list(text.shape)}, but hoi_head outputs {width}-wide pair "
                            f"embeddings; {REBAKE_HINT} with the checkpoint this artifact was exported from")
    return vocab, text


def pair_embedding_width(manifest: Manifest) -> int | None:
    """E of hoi_head's (1, K*K, E) output, when the manifest records output shapes (format 2)."""
    unit = manifest.units.get("hoi_head")
    if unit is None or not unit.output_shapes or not unit.outputs:
        return None
    shape = unit.output_shapes.get(unit.outputs[0])
    return int(shape[-1]) if shape else None


def load_artifact(folder: str | Path, num_threads: int | None = None) -> HOIDetector:
    folder = Path(folder)
    manifest = Manifest.read(folder)
    missing_units = set(UNIT_NAMES) - set(manifest.units)
    if missing_units:
        raise ArtifactError(f"{folder}: manifest lacks units {sorted(missing_units)}")
    vocab, text = read_text_bank(folder, manifest)
    runner = make_runner(manifest, folder, num_threads)
    detector = HOIDetector(runner, manifest.spec, vocab, text)
    detector.manifest = manifest
    return detector
