"""OpenVINO backend: compiled IR models on the CPU plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from hoi_edge.runtime.base import ArtifactRunner


class OpenVINORunner(ArtifactRunner):
    name = "openvino"

    def _load(self, path: Path):
        config: dict[str, str] = {}
        if self.manifest.precision == "fp32":
            # CPUs with AMX/AVX512-BF16 otherwise run FP32 IR in bf16; an FP32 artifact should mean FP32 math
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if self.num_threads:
            config["INFERENCE_NUM_THREADS"] = str(self.num_threads)
        core = ov.Core()
        return core.compile_model(core.read_model(path), "CPU", config)

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = unit(inputs)
        return [np.asarray(result[out]) for out in unit.outputs]
