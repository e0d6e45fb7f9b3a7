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

from hoi_edge.checkpoint import file_sha256, load_model
from hoi_edge.errors import ArtifactError
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.runtime.manifest import TEXT_EMBEDDINGS, VOCABULARY, Manifest
from hoi_edge.vocabulary import Vocabulary, load_vocabulary


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


def write_text_bank(folder: Path, embeddings: np.ndarray, vocab: Vocabulary) -> None:
    np.save(folder / TEXT_EMBEDDINGS, embeddings.astype(np.float32))
    (folder / VOCABULARY).write_text(json.dumps(vocab.to_dict(), indent=1) + "\n")


def rebake_artifact(folder: str | Path, checkpoint: str | Path, vocabulary: str | Path) -> Manifest:
    """Replace an artifact's baked vocabulary in place (atomically: new files are renamed over the old)."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    if file_sha256(checkpoint) != manifest.source_checkpoint.get("sha256"):
        raise ArtifactError(f"{checkpoint} is not the checkpoint {folder} was exported from (sha256 differs)")
    vocab = load_vocabulary(vocabulary)
    embeddings = bake_text_embeddings(load_model(checkpoint), vocab)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        tmp_dir = Path(tmp)
        write_text_bank(tmp_dir, embeddings, vocab)
        manifest.vocabulary_fingerprint = vocab.fingerprint()
        manifest.write(tmp_dir)
        for name in (TEXT_EMBEDDINGS, VOCABULARY, "manifest.json"):
            os.replace(tmp_dir / name, folder / name)
    return manifest
