"""ONNX Runtime backend: execution providers in the user's priority order (CPU by default; CUDA, TensorRT,
OpenVINO EP, CoreML where installed), CPU fallback only when the user lists ``cpu``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from hoi_edge.core.errors import DeviceError
from hoi_edge.runtime.base import ArtifactRunner
from hoi_edge.runtime.devices import OrtPlan


class ONNXRunner(ArtifactRunner):
    name = "onnxruntime"

    def _load(self, path: Path, plan: OrtPlan):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.num_threads:
            opts.intra_op_num_threads = self.num_threads
        if not plan.cpu_fallback:
            # ORT would otherwise run every node the accelerator cannot take on the CPU, silently
            opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
            opts.log_severity_level = 4          # the refusal below is reported in our own words
        try:
            session = ort.InferenceSession(str(path), opts, providers=plan.providers, provider_options=plan.options)
        except Exception as exc:
            if "fallback to CPU EP has been explicitly disabled" not in str(exc):
                raise
            raise DeviceError(f"{path}: {', '.join(plan.providers)} cannot run every node of this network and the "
                              "CPU fallback is off (ORT: fallback to CPU EP has been explicitly disabled); add ',cpu' "
                              "to --device to let the CPU run the rest") from None
        if not plan.cpu_fallback and plan.providers[0] not in session.get_providers():
            raise DeviceError(f"{path}: ONNX Runtime could not start {plan.providers[0]} (session runs on "
                              f"{', '.join(session.get_providers())}); add ',cpu' to allow the CPU fallback")
        return session

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = {i.name: x for i, x in zip(unit.get_inputs(), inputs)}
        return unit.run(None, feeds)

    def _execution(self, unit: str, session: Any) -> dict[str, Any]:
        plan: OrtPlan = self.devices[unit]
        info: dict[str, Any] = {"requested": list(plan.providers) + list(plan.skipped),
                                "executed": list(session.get_providers())}
        if plan.skipped:
            info["fell_back"] = f"not on this machine: {', '.join(plan.skipped)}"
        return info
