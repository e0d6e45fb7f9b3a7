"""Vocabulary bake: run the CLIP text encoder once over a vocabulary's learned prompts.

The device then only needs a (C, E) matrix; swapping vocabularies is a re-bake
of that matrix, never a re-export of the image-side networks.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hoi_edge.core.atomic import atomic_directory
from hoi_edge.core.errors import ArtifactError, WeightsError
from hoi_edge.data.vocabulary import Vocabulary, load_vocabulary
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.pipeline.postprocess import LabelMap
from hoi_edge.runtime.artifact import pair_embedding_width
from hoi_edge.runtime.manifest import FORMAT_VERSION, MANIFEST, TEXT_EMBEDDINGS, VOCABULARY, Manifest, hash_files
from hoi_edge.targets_registry import read_manifest
from hoi_edge.weights.checkpoint import file_sha256, load_model


@torch.inference_mode()
def bake_text_embeddings(model: CLIP4HOI, vocab: Vocabulary | None = None) -> np.ndarray:
    """(C, E) float32, L2-normalised, for ``vocab`` (default: the model's own)."""
    if vocab is not None and vocab is not model.vocab:
        previous = model.vocab
        model.classifier.set_vocabulary(vocab)
        try:
            return model.text_embeddings().float().cpu().numpy()
        finally:
            model.classifier.set_vocabulary(previous)
    return model.text_embeddings().float().cpu().numpy()


def write_text_bank(folder: Path, embeddings: np.ndarray, vocab: Vocabulary) -> str:
    """Write the embeddings and their vocabulary into ``folder``; returns the embeddings file's sha256
    (the manifest records it, so a text bank that does not belong to the manifest is caught on load)."""
    np.save(folder / TEXT_EMBEDDINGS, embeddings.astype(np.float32))
    (folder / VOCABULARY).write_text(json.dumps(vocab.to_dict(), indent=1) + "\n")
    return file_sha256(folder / TEXT_EMBEDDINGS)


def check_vocabulary(detector_classes: Sequence[str], vocabulary: str | Path | Vocabulary) -> Vocabulary:
    """The vocabulary (a name, a file or one already built), checked against the detector's label space as
    :class:`HOIDetector` does when loading: an object the detector cannot find is a :class:`VocabularyError`.
    ``hoi-edge bake`` and a running server's vocabulary box both check here, so they refuse with one message."""
    vocab = vocabulary if isinstance(vocabulary, Vocabulary) else load_vocabulary(vocabulary)
    LabelMap.build(detector_classes, vocab)
    return vocab


def source_checkpoint(folder: Path, manifest: Manifest, checkpoint: str | Path) -> Path:
    """``checkpoint`` ('default' resolved) after checking it is the one ``folder`` was exported from (sha256):
    only its text encoder bakes embeddings that the artifact's HOI head was trained against."""
    from hoi_edge.weights.defaults import resolve_checkpoint

    path = Path(resolve_checkpoint(checkpoint))                 # 'default': the same model as in export
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    if file_sha256(path) != manifest.source_checkpoint.get("sha256"):
        raise ArtifactError(f"{path} is not the checkpoint {folder} was exported from (sha256 differs)")
    return path


def check_width(embeddings: np.ndarray, width: int | None, checkpoint: str | Path, folder: str | Path) -> None:
    if width is not None and embeddings.shape[1] != width:
        raise ArtifactError(f"{checkpoint} bakes {embeddings.shape[1]}-wide text embeddings, but {folder}'s "
                            f"hoi_head outputs {width}-wide pair embeddings")


class TextBaker:
    """Bakes text banks in a running process (``hoi-edge serve``'s vocabulary box): the text encoder is loaded
    once, every vocabulary gets :func:`check_vocabulary` first, as in ``hoi-edge bake``, and bakes run one at
    a time (baking briefly re-targets the model's prompts; the image-side networks never read them)."""

    def __init__(self, model: CLIP4HOI, detector_classes: Sequence[str], width: int | None = None,
                 checkpoint: str = "the model", folder: str = "the artifact") -> None:
        self.model, self.detector_classes, self.width = model, list(detector_classes), width
        self._where = (checkpoint, folder)
        self._lock = threading.Lock()

    @classmethod
    def for_artifact(cls, folder: str | Path, manifest: Manifest, checkpoint: str | Path) -> "TextBaker":
        """The text encoder of the checkpoint ``folder`` was exported from (checked by sha256)."""
        folder = Path(folder)
        path = source_checkpoint(folder, manifest, checkpoint)
        return cls(load_model(path), manifest.spec.detector_classes, pair_embedding_width(manifest),
                   str(path), str(folder))

    def bake(self, vocabulary: str | Path | Vocabulary) -> tuple[Vocabulary, np.ndarray]:
        """(the checked vocabulary, its (C, E) embeddings)."""
        vocab = check_vocabulary(self.detector_classes, vocabulary)     # nothing is baked for a refused one
        with self._lock:
            embeddings = bake_text_embeddings(self.model, vocab)
        check_width(embeddings, self.width, *self._where)
        return vocab, embeddings


def rebake_artifact(folder: str | Path, checkpoint: str | Path, vocabulary: str | Path) -> Manifest:
    """Replace an artifact's baked vocabulary; nothing is touched until the new artifact is whole.

    The vocabulary is checked against the detector's label space first (:func:`check_vocabulary`). The
    re-baked artifact is built beside the old one (its unchanged networks hard-linked, so no copy of their
    bytes) and swapped in with one atomic exchange (:func:`hoi_edge.core.atomic.atomic_directory`): a
    process killed at any moment leaves the old artifact or the new one, each whole and matching its
    manifest.
    """
    folder = Path(folder)
    manifest, _ = read_manifest(folder)
    vocab = check_vocabulary(manifest.spec.detector_classes, vocabulary)   # unknown objects: nothing written
    checkpoint = source_checkpoint(folder, manifest, checkpoint)
    embeddings = bake_text_embeddings(load_model(checkpoint), vocab)
    check_width(embeddings, pair_embedding_width(manifest), checkpoint, folder)
    with atomic_directory(folder) as tmp:
        manifest.text_embeddings_sha256 = write_text_bank(tmp, embeddings, vocab)
        networks: list[str] = []
        if manifest.layout == "end-to-end":      # the vocabulary is a constant of the one network: re-export it
            from targets.end_to_end import rebake_network

            networks = rebake_network(tmp, manifest, Path(checkpoint), vocab, embeddings)
        rebaked = {*networks, TEXT_EMBEDDINGS, VOCABULARY, MANIFEST}
        for old in folder.iterdir():             # everything else is unchanged: linked, not copied
            if old.name not in rebaked and not (tmp / old.name).exists():
                _link_or_copy(old, tmp / old.name)
        manifest.vocabulary_fingerprint = vocab.fingerprint()
        manifest.format_version = FORMAT_VERSION          # it now carries the sha256 fields
        if manifest.files is not None:                    # the networks are unchanged: only the bank's hashes move
            manifest.files.update({name: file_sha256(tmp / name) for name in (*networks, TEXT_EMBEDDINGS, VOCABULARY)})
        else:
            manifest.files = hash_files(tmp)
        manifest.write(tmp, record_files=False)
    return manifest


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_or_copy_file)
    else:
        _link_or_copy_file(src, dst)


def _link_or_copy_file(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:                # a file system without hard links
        shutil.copy2(src, dst)
