"""Shared shape checking and unit dispatch for the artifact backends (one subclass per runtime)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hoi_edge.errors import ArtifactError
from hoi_edge.runtime.manifest import Manifest


class ArtifactRunner:
    """Implements :class:`hoi_edge.pipeline.StageRunner` over three compiled units."""

    name = "artifact"

    def __init__(self, folder: Path, manifest: Manifest, num_threads: int | None = None) -> None:
        self.manifest = manifest
        self.num_threads = num_threads
        self._units = {}
        for unit, spec in manifest.units.items():
            try:
                self._units[unit] = self._load(folder / spec.file)
            except Exception as exc:  # runtime-specific parse errors all mean a broken file
                raise ArtifactError(f"cannot load {self.name} unit {folder / spec.file}: {exc}") from exc

    def _load(self, path: Path) -> Any:
        raise NotImplementedError

    def _run(self, unit: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def call(self, unit: str, *arrays: np.ndarray) -> list[np.ndarray]:
        spec = self.manifest.units[unit]
        if len(arrays) != len(spec.inputs):
            raise ArtifactError(f"{unit}: expected {len(spec.inputs)} inputs, got {len(arrays)}")
        for (name, shape), a in zip(spec.inputs.items(), arrays):
            if list(a.shape) != list(shape):
                raise ArtifactError(
                    f"{unit}: input '{name}' has shape {list(a.shape)}, but the artifact was exported for {shape}"
                )
        return self._run(self._units[unit], [np.ascontiguousarray(a, dtype=np.float32) for a in arrays])

    def detector(self, images: np.ndarray):
        logits, boxes, feats = self.call("detector", images)
        return logits, boxes, feats

    def clip_image(self, images: np.ndarray):
        global_emb, patches = self.call("clip_image", images)
        return global_emb, patches

    def hoi_head(self, features, boxes, valid, human, patches):
        return self.call("hoi_head", features, boxes, valid, human, patches)[0]
