"""Vocabulary bake: run the CLIP text encoder once over a vocabulary's learned prompts.

The device then only needs a (C, E) matrix; swapping vocabularies is a re-bake
of that matrix, never a re-export of the image-side networks.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

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


def rebake_artifact(folder: str | Path, checkpoint: str | Path, vocabulary: str | Path) -> Manifest:
    """Replace an artifact's baked vocabulary in place; nothing is touched until the new bank is ready.

    The vocabulary is checked against the detector's label space first (as :class:`HOIDetector`
    does when loading). The three files are written under temporary names and renamed over the
    old ones, the manifest last: a crash between renames leaves a text bank whose fingerprint or
    sha256 disagrees with the manifest, which loading reports instead of using it.
    """
    from hoi_edge.weights.defaults import resolve_checkpoint

    folder = Path(folder)
    manifest, _ = read_manifest(folder)
    vocab = load_vocabulary(vocabulary)
    LabelMap.build(manifest.spec.detector_classes, vocab)          # unknown objects: VocabularyError, nothing written
    checkpoint = resolve_checkpoint(checkpoint)                         # 'default': the same model as in export
    if not Path(checkpoint).is_file():
        raise WeightsError(f"checkpoint not found: {checkpoint}")
    if file_sha256(checkpoint) != manifest.source_checkpoint.get("sha256"):
        raise ArtifactError(f"{checkpoint} is not the checkpoint {folder} was exported from (sha256 differs)")
    embeddings = bake_text_embeddings(load_model(checkpoint), vocab)
    width = pair_embedding_width(manifest)
    if width is not None and embeddings.shape[1] != width:
        raise ArtifactError(f"{checkpoint} bakes {embeddings.shape[1]}-wide text embeddings, but {folder}'s "
                            f"hoi_head outputs {width}-wide pair embeddings")
    with tempfile.TemporaryDirectory(prefix=".rebake-", dir=folder) as tmp:
        tmp_dir = Path(tmp)
        manifest.text_embeddings_sha256 = write_text_bank(tmp_dir, embeddings, vocab)
        networks: list[str] = []
        if manifest.layout == "end-to-end":      # the vocabulary is a constant of the one network: re-export it
            from targets.end_to_end import rebake_network

            networks = rebake_network(tmp_dir, manifest, Path(checkpoint), vocab, embeddings)
        manifest.vocabulary_fingerprint = vocab.fingerprint()
        manifest.format_version = FORMAT_VERSION          # it now carries the sha256 fields
        if manifest.files is not None:                    # the networks are unchanged: only the bank's hashes move
            manifest.files.update({name: file_sha256(tmp_dir / name)
                                   for name in (*networks, TEXT_EMBEDDINGS, VOCABULARY)})
        else:
            manifest.files = {**hash_files(folder), **hash_files(tmp_dir)}
        manifest.write(tmp_dir, record_files=False)
        for name in (*networks, TEXT_EMBEDDINGS, VOCABULARY, MANIFEST):
            os.replace(tmp_dir / name, folder / name)
    return manifest
