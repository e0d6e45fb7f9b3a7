"""Shared shape checking and unit dispatch for the artifact backends (one subclass per runtime)."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from hoi_edge.core.errors import ArtifactError, DeviceError
from hoi_edge.runtime.manifest import Manifest

#: How many outputs each unit's StageRunner method returns (hoi_head: one array, not a tuple).
UNIT_OUTPUTS = {"detector": 3, "clip_image": 2, "hoi_head": 1}


def shape_outputs(unit: str, outputs: list[np.ndarray]) -> Any:
    """A unit's raw outputs as its StageRunner method returns them (a tuple, or hoi_head's one array)."""
    return outputs[0] if UNIT_OUTPUTS.get(unit) == 1 else tuple(outputs)


class ArtifactRunner:
    """Implements :class:`hoi_edge.pipeline.detector.StageRunner` over three compiled units."""

    name = "artifact"

    def __init__(self, folder: Path, manifest: Manifest, num_threads: int | None = None, device: str | None = None,
                 throughput: bool = False, devices: dict[str, Any] | None = None) -> None:
        """``devices``: each network's device as the target's parser made it from the user's ``device`` text
        (:meth:`hoi_edge.targets_registry.Target.parse_devices`; the loader parses it, the runner compiles on
        it); ``throughput``: compile for several requests in flight (OpenVINO's THROUGHPUT hint, its CPU
        streams) instead of the lowest single-request latency."""
        if devices is None:
            raise TypeError(f"{type(self).__name__} needs the parsed devices: load artifacts through "
                            "hoi_edge.runtime.artifact.make_runner / load_artifact")
        self.manifest = manifest
        self.num_threads = num_threads
        self.device = device
        self.throughput = throughput
        self.devices = dict(devices)
        for unit in manifest.units:       # an end-to-end artifact's one network runs where the detector would
            self.devices.setdefault(unit, self.devices.get("detector"))
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._units = {}
        for unit, spec in manifest.units.items():
            try:
                self._units[unit] = self._load(folder / spec.file, self.devices.get(unit))
            except DeviceError:
                raise
            except Exception as exc:  # runtime-specific parse errors all mean a broken file
                raise ArtifactError(f"cannot load {self.name} unit {folder / spec.file}"
                                    f"{self._on(unit)}: {exc}") from exc

    def _on(self, unit: str) -> str:
        return "" if self.device is None else f" on {self.devices.get(unit)}"

    def _load(self, path: Path, device: Any) -> Any:
        raise NotImplementedError

    def execution_info(self) -> dict[str, dict[str, Any]]:
        """Per unit, the device asked for and what the runtime says actually ran it (for reports)."""
        return {unit: self._execution(unit, compiled) for unit, compiled in self._units.items()}

    def _execution(self, unit: str, compiled: Any) -> dict[str, Any]:
        return {"requested": str(self.devices.get(unit)), "executed": None}

    def submit(self, unit: str, *arrays: np.ndarray) -> Future:
        """Start ``unit`` without waiting; the future's result is what the unit's StageRunner method returns.

        Calls of one unit run one at a time in submission order, on a worker thread of their own (the
        runtimes release the GIL while they compute, so different units overlap); runtimes with an async
        API of their own override this."""
        with self._lock:
            ex = self._executors.get(unit)
            if ex is None:
                ex = self._executors[unit] = ThreadPoolExecutor(1, thread_name_prefix=f"hoi-edge-{unit}")
        return ex.submit(lambda: shape_outputs(unit, self.call(unit, *arrays)))

    def close(self) -> None:
        """Stop the worker threads :meth:`submit` started (idempotent)."""
        with self._lock:
            executors, self._executors = list(self._executors.values()), {}
        for ex in executors:
            ex.shutdown(wait=True)

    def _run(self, unit: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def call(self, unit: str, *arrays: np.ndarray) -> list[np.ndarray]:
        return self._run(self._units[unit], self.checked_inputs(unit, arrays))

    def checked_inputs(self, unit: str, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        """``arrays`` as contiguous float32, after checking them against the manifest's static shapes."""
        spec = self.manifest.units[unit]
        if len(arrays) != len(spec.inputs):
            raise ArtifactError(f"{unit}: expected {len(spec.inputs)} inputs, got {len(arrays)}")
        for (name, shape), a in zip(spec.inputs.items(), arrays):
            if list(a.shape) != list(shape):
                raise ArtifactError(
                    f"{unit}: input '{name}' has shape {list(a.shape)}, but the artifact was exported for {shape}"
                )
        return [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]

    def detector(self, images: np.ndarray):
        logits, boxes, feats = self.call("detector", images)
        return logits, boxes, feats

    def clip_image(self, images: np.ndarray):
        global_emb, patches = self.call("clip_image", images)
        return global_emb, patches

    def hoi_head(self, features, boxes, valid, human, patches):
        return self.call("hoi_head", features, boxes, valid, human, patches)[0]
