"""Open a detector from what the user names: a checkpoint, 'default', or an artifact folder."""

from __future__ import annotations

from pathlib import Path

from hoi_edge.errors import InputFileError
from hoi_edge.pipeline import HOIDetector


def open_detector(model: str | None = "default", artifact: str | Path | None = None,
                  vocabulary: str | Path | None = None, device: str = "cpu", clip_weights: str | None = None,
                  detector_weights: str | None = None) -> HOIDetector:
    """The CLI's single entry point; ``artifact`` wins over ``model``."""
    if artifact is not None:
        if vocabulary is not None:
            raise InputFileError("--vocab cannot re-target an artifact (its text embeddings are baked in); re-bake it "
                                 f"with 'hoi-edge bake --artifact {artifact} --model CHECKPOINT --vocab {vocabulary}'")
        return HOIDetector.from_artifact(artifact)
    if model in (None, "default"):
        from hoi_edge.defaults import default_checkpoint

        model = str(default_checkpoint(clip_weights=clip_weights, detector_weights=detector_weights))
    return HOIDetector.from_checkpoint(model, vocabulary=vocabulary, device=device)
