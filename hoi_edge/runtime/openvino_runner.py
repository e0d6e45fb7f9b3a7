"""OpenVINO backend: compiled IR models on any OpenVINO device (CPU, GPU, NPU, AUTO, HETERO, MULTI), with
AsyncInferQueue for pipelined streams."""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from hoi_edge.runtime.base import ArtifactRunner, shape_outputs
from hoi_edge.runtime.manifest import Manifest


def cpu_inference_precision(artifact_precision: str, capabilities: list[str]) -> str | None:
    """The CPU plugin's inference precision for an artifact of ``artifact_precision``, or None for its default.

    On CPUs with AVX512-BF16 or AMX the plugin runs floating-point layers in bf16 by default, even when asked
    for f16 where the CPU has no native f16 arithmetic (an 8-bit mantissa: the FP16 artifact's scores moved by
    9 % on an AMD EPYC with AVX512-BF16). An FP32 artifact means FP32 math, and an FP16 one at least FP16
    precision: f16 where the CPU computes it natively, else f32.

    INT8 artifacts run their floating-point layers (the ones the recipe keeps FP: NanoDet's GFL class/box conv
    and decoding, DETR's heads, softmax, layer norms) in f32 too. Measured on the AMD EPYC (AVX-512 VNNI,
    AVX512-BF16; ``benchmarks/bench_int8.py``, under load): the NanoDet INT8 detector's box AP50 against FP32 is
    the same with bf16 (88.5 / 94.4 vs 88.4 / 94.4 on the 16 images / 80 frames) and bf16 is not faster
    (47.4 vs 44.6 ms), while bf16 made a distilled IR differ from its distilled model (output cosine 0.9994
    instead of 1.0000 for the tiny HOI head): the layers kept FP for accuracy are not then rounded to 8 bits."""
    if artifact_precision in ("fp32", "int8"):
        return "f32"
    if artifact_precision == "fp16":
        return "f16" if "FP16" in capabilities else "f32"
    return None


class OpenVINORunner(ArtifactRunner):
    name = "openvino"

    def __init__(self, folder: Path, manifest: Manifest, num_threads: int | None = None, device: str | None = None,
                 throughput: bool = False, devices: dict[str, str] | None = None) -> None:
        self._core = ov.Core()
        self._queues: dict[str, ov.AsyncInferQueue] = {}
        self._starting: dict[str, threading.Lock] = {}
        self._requests: dict[int, ov.InferRequest] = {}
        cpu: dict[str, str] = {}
        capabilities = self._core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        precision = cpu_inference_precision(manifest.precision, capabilities)
        if precision:
            cpu["INFERENCE_PRECISION_HINT"] = precision
        if num_threads:
            cpu["INFERENCE_NUM_THREADS"] = str(num_threads)
        if cpu:
            # set on the core, not per compile: it then also reaches the CPU inside AUTO / HETERO / MULTI
            self._core.set_property("CPU", cpu)
        if manifest.precision == "fp32" and any(d.startswith("GPU") for d in self._core.available_devices):
            self._core.set_property("GPU", {"INFERENCE_PRECISION_HINT": "f32"})  # GPUs default to f16
        super().__init__(folder, manifest, num_threads, device, throughput, devices)

    def _load(self, path: Path, device: str):
        hint = "THROUGHPUT" if self.throughput else "LATENCY"
        return self._core.compile_model(self._static(self._core.read_model(path), path), device,
                                        {"PERFORMANCE_HINT": hint})

    def _static(self, model: ov.Model, path: Path) -> ov.Model:
        """The IR with the manifest's static input shapes: NPUs compile only static shapes, and every
        device can then plan its memory once."""
        spec = next((u for u in self.manifest.units.values() if u.file == path.name), None)
        if spec is None or not any(i.get_partial_shape().is_dynamic for i in model.inputs):
            return model
        names = {n for i in model.inputs for n in i.get_names()}
        if set(spec.inputs) <= names:
            model.reshape({name: ov.PartialShape(shape) for name, shape in spec.inputs.items()})
        return model

    def _run(self, unit, inputs: list[np.ndarray]) -> list[np.ndarray]:
        # an infer request of our own per unit: CompiledModel.__call__'s hidden one, used beside the
        # AsyncInferQueue of submit(), corrupted the heap (OpenVINO 2026.4, dynamic-shape IR)
        request = self._requests.get(id(unit))
        if request is None:
            request = self._requests[id(unit)] = unit.create_infer_request()
        request.infer(inputs)
        return [np.array(t.data, copy=True) for t in request.output_tensors]

    def _execution(self, unit: str, compiled: Any) -> dict[str, Any]:
        info: dict[str, Any] = {"requested": self.devices[unit],
                                "executed": [str(d) for d in compiled.get_property("EXECUTION_DEVICES")]}
        try:
            info["streams"] = int(compiled.get_property("NUM_STREAMS"))
        except RuntimeError:          # not every device (plugin) reports streams
            pass
        return info

    def submit(self, unit: str, *arrays: np.ndarray) -> Future:
        """Start ``unit`` on OpenVINO's own AsyncInferQueue (as many requests as the compiled model says are
        optimal: one per CPU stream); blocks only while every request of that unit is busy."""
        inputs = self.checked_inputs(unit, arrays)
        with self._lock:
            queue = self._queues.get(unit)
            if queue is None:
                compiled = self._units[unit]
                jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) or 1
                queue = self._queues[unit] = ov.AsyncInferQueue(compiled, jobs)
                queue.set_callback(self._finished)
                self._starting[unit] = threading.Lock()
                if len(self._queues) == 1:
                    # a queue destroyed with requests running aborts the process (interpreter exit included)
                    weakref.finalize(self, _wait_all, self._queues)
        future: Future = Future()
        # the inputs ride along until the request is done: with the IR's dynamic input shapes OpenVINO may
        # read them after start_async returns (freed early, they corrupted the heap). One caller at a time
        # per queue: two threads (two streams of a server) could otherwise both be handed the same idle
        # request ("Infer Request is busy", OpenVINO 2026.4)
        with self._starting[unit]:
            queue.start_async(inputs, (unit, future, inputs))
        return future

    @staticmethod
    def _finished(request: ov.InferRequest, userdata: tuple[str, Future, list[np.ndarray]]) -> None:
        unit, future, _ = userdata
        try:
            outputs = [np.array(t.data, copy=True) for t in request.output_tensors]
            future.set_result(shape_outputs(unit, outputs))
        except Exception as exc:  # noqa: BLE001 - delivered to whoever waits on the future
            future.set_exception(exc)

    def close(self) -> None:
        with self._lock:
            _wait_all(self._queues)
        super().close()


def _wait_all(queues: dict[str, ov.AsyncInferQueue]) -> None:
    for q in queues.values():
        q.wait_all()
