"""Open a detector from what the user names: a checkpoint, 'default', or an artifact folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hoi_edge.errors import InputFileError

if TYPE_CHECKING:
    from hoi_edge.pipeline import HOIDetector


def open_detector(model: str | None = None, artifact: str | Path | None = None,
                  vocabulary: str | Path | None = None, device: str | None = None, clip_weights: str | None = None,
                  detector_weights: str | None = None, throughput: bool = False) -> "HOIDetector":
    """The CLI's single entry point: a checkpoint (``model``, None = 'default') or an artifact folder, never both."""
    from hoi_edge.pipeline import HOIDetector

    if artifact is not None:
        if model is not None:
            raise InputFileError(f"--model {model} and --artifact {artifact} name two models; give one of them "
                                 "(an artifact already holds its networks)")
        if vocabulary is not None:
            raise InputFileError("--vocab cannot re-target an artifact (its text embeddings are baked in); re-bake it "
                                 f"with 'hoi-edge bake --artifact {artifact} --model CHECKPOINT --vocab {vocabulary}'")
        return HOIDetector.from_artifact(artifact, device=device, throughput=throughput)
    from hoi_edge.defaults import resolve_checkpoint       # 'default' means the same model in every command

    path = resolve_checkpoint(model, clip_weights, detector_weights)
    return HOIDetector.from_checkpoint(path, vocabulary=vocabulary, device=device or "cpu")
