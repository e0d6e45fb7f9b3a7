"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from hoi_edge.runtime.base import ArtifactRunner


class ONNXRunner(ArtifactRunner):
    name = "onnxruntime"

    def _load(self, path: Path):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.num_threads:
            opts.intra_op_num_threads = self.num_threads
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = {i.name: x for i, x in zip(unit.get_inputs(), inputs)}
        return unit.run(None, feeds)
