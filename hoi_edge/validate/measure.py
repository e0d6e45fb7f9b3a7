"""Run one backend over a list of images: warm-up (untimed), then timed runs, keeping the
detections and per-stage timings.

By default every backend runs in a fresh Python process (``isolate=True``): its peak RSS is
then its own (see :mod:`hoi_edge.validate.memory`), thread settings cannot leak from one
runtime into the next, and a crash in a runtime is reported instead of killing the caller.
The parent and the child exchange a JSON request and a JSON + ``.npz`` result through a
temporary folder.

Threads: ``RunSettings.threads`` goes to the runtime (``torch.set_num_threads`` for the
reference, ExecuTorch's own threadpool, ``INFERENCE_NUM_THREADS`` for OpenVINO,
``intra_op_num_threads`` for ONNX Runtime) and to OpenCV (letterbox resize); NumPy's BLAS is pinned to one thread in
every isolated run (see ``_BLAS_ENV``).

Imports: a worker imports only its own runtime (PyTorch for the reference and ExecuTorch, just
OpenVINO or ONNX Runtime for those artifacts), and does so before the memory baseline, so
``Peak RSS`` is what that backend costs on the device and ``(+model)`` excludes the import.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hoi_edge import errors as _errors
from hoi_edge.errors import HOIEdgeError
from hoi_edge.eval import Predictions
from hoi_edge.pipeline import STAGES
from hoi_edge.validate.backends import BackendSpec
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.memory import MemoryStats, current_rss_mb, peak_rss_mb

# NumPy's BLAS runs only the tiny matrices of the shared post-processing. A second thread pool
# beside the runtime's oversubscribes the cores: on 2 cores, post-processing took 13-37 ms
# instead of ~1.2 ms after ONNX Runtime / ExecuTorch / OpenVINO runs. Pinned to 1 for every backend.
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class RunSettings:
    """``runs=None``: ``passes`` timed passes over the images, the first pass's detections kept
    (validation). ``runs=N``: N timed runs cycling through the images, detections dropped (benchmark)."""

    warmup: int = 3
    runs: int | None = None
    threads: int | None = None
    progress: bool = True
    isolate: bool = True
    passes: int = 1

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValidationError(f"--warmup must be >= 0, got {self.warmup}")
        if self.runs is not None and self.runs < 1:
            raise ValidationError(f"--runs must be >= 1, got {self.runs}")
        if self.passes < 1:
            raise ValidationError(f"timed passes must be >= 1, got {self.passes}")

    def timed_images(self, n: int) -> list[int]:
        """Image index of every timed run."""
        if self.runs is None:
            return list(range(n)) * self.passes
        return [i % n for i in range(self.runs)]


def passes_for(min_runs: int, num_images: int) -> int:
    """Whole passes over ``num_images`` giving at least ``min_runs`` timed runs: every image is
    timed equally often, and a p90 over 2 images becomes a p90 over 20 runs."""
    if min_runs < 1:
        raise ValidationError(f"--runs must be >= 1, got {min_runs}")
    return max(1, math.ceil(min_runs / max(num_images, 1)))


@dataclass
class BackendRun:
    """Raw measurements of one backend; ``predictions.image`` indexes the image list it was given."""

    spec: BackendSpec
    backend: str
    threads: int | None
    load_s: float
    image_index: np.ndarray                 # (R,) image of each timed run
    wall_s: np.ndarray                      # (R,) end-to-end seconds of each timed run
    stage_s: dict[str, np.ndarray]          # stage -> (R,) seconds
    predictions: Predictions | None
    memory: MemoryStats
    vocabulary_fingerprint: str = ""
    vocabulary: dict[str, Any] | None = field(default=None, repr=False)


def run_backend(spec: BackendSpec, images: Sequence[Path], settings: RunSettings) -> BackendRun:
    """Measure ``spec`` on ``images``: in a fresh process when ``settings.isolate``, else here."""
    if not images:
        raise ValidationError("no images to run")
    if settings.isolate:
        return _run_isolated(spec, images, settings)
    return measure_here(spec, images, settings, measure_memory=False)


# Modules a backend's runtime needs, imported before the memory baseline. Only the reference and
# ExecuTorch (whose Python runtime takes torch tensors) pull in PyTorch.
RUNTIME_MODULES: dict[str, tuple[str, ...]] = {
    "pytorch": ("torch", "hoi_edge.checkpoint", "hoi_edge.runtime.torch_runner"),
    "openvino": ("hoi_edge.runtime.openvino_runner",),
    "onnx": ("hoi_edge.runtime.onnx_runner",),
    "executorch": ("hoi_edge.runtime.executorch_runner", "executorch.runtime", "executorch.kernels.quantized"),
}


def import_runtime(spec: BackendSpec) -> None:
    """Import ``spec``'s runtime now, so the baseline RSS includes it; a missing package is left for
    :func:`open_backend` to report in its own words."""
    for name in RUNTIME_MODULES.get(spec.target, ()):
        try:
            importlib.import_module(name)
        except ImportError:
            return


def open_backend(spec: BackendSpec, threads: int | None):
    """The HOIDetector for ``spec`` with ``threads`` applied to its runtime."""
    if spec.is_reference:
        import torch

        from hoi_edge.pipeline import HOIDetector

        if spec.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValidationError(f"device {spec.device!r} requested for the reference, but PyTorch sees no GPU")
        if threads:
            torch.set_num_threads(threads)
        return HOIDetector.from_checkpoint(spec.path, device=spec.device)
    from hoi_edge.runtime.artifact import load_artifact

    return load_artifact(spec.path, num_threads=threads)


def _cuda_torch(spec: BackendSpec):
    """``torch`` when ``spec`` runs on a GPU PyTorch can see, else ``None`` (no torch import)."""
    if not spec.device.startswith("cuda"):
        return None
    import torch

    return torch if torch.cuda.is_available() else None


def measure_here(spec: BackendSpec, images: Sequence[Path], settings: RunSettings,
                 measure_memory: bool = True) -> BackendRun:
    """Load, warm up and time ``spec`` in this process (the body of the isolated worker).

    PyTorch is imported only when ``spec`` needs it (see :data:`RUNTIME_MODULES`), or in a
    shared process (``isolate=False``) to restore its thread count afterwards."""
    import cv2
    from tqdm import tqdm

    from hoi_edge.preprocess import load_image

    torch_threads = None
    if not settings.isolate:
        import torch

        torch_threads = torch.get_num_threads()
    cv2_threads = cv2.getNumThreads()
    if settings.threads:
        cv2.setNumThreads(settings.threads)   # letterbox resize: same pool size for every backend
    try:
        import_runtime(spec)
        gpu = _cuda_torch(spec)
        if gpu is not None:
            gpu.cuda.reset_peak_memory_stats()
        baseline = current_rss_mb() if measure_memory else None
        start = time.perf_counter()
        detector = open_backend(spec, settings.threads)
        load_s = time.perf_counter() - start

        n = len(images)
        timed = settings.timed_images(n)
        keep = n if settings.runs is None else 0          # detections of the first pass only
        bar = tqdm(total=settings.warmup + len(timed), desc=spec.label, unit="img", disable=not settings.progress,
                   leave=True, dynamic_ncols=True)
        with bar:
            bar.set_postfix_str("warm-up")
            for w in range(settings.warmup):
                detector.run(load_image(images[w % n]))
                bar.update()
            bar.set_postfix_str("timed")
            wall = np.zeros(len(timed))
            stages = {s: np.zeros(len(timed)) for s in STAGES}
            det: dict[str, list] = {"image": [], "hoi": [], "score": [], "h": [], "o": []}
            for r, i in enumerate(timed):
                image = load_image(images[i])              # decoding is not part of the latency
                t0 = time.perf_counter()
                pred = detector.run(image)
                wall[r] = time.perf_counter() - t0
                for s in STAGES:
                    stages[s][r] = pred.timings.get(s, 0.0)
                if r < keep:
                    for d in pred.detections:
                        det["image"].append(i)
                        det["hoi"].append(d.hoi)
                        det["score"].append(d.score)
                        det["h"].append(d.human_box)
                        det["o"].append(d.object_box)
                bar.update()
        if measure_memory:
            peak, method = peak_rss_mb()
            gpu_mb = gpu.cuda.max_memory_allocated() / 2**20 if gpu is not None else None
            memory = MemoryStats(peak, baseline if peak is not None else None, gpu_mb, method)
        else:
            memory = MemoryStats.not_measured("in-process run")
        predictions = None
        if keep:
            predictions = Predictions.from_arrays(det["image"], det["hoi"], det["score"],
                                                  np.reshape(det["h"], (-1, 4)), np.reshape(det["o"], (-1, 4)),
                                                  source=spec.label)
        return BackendRun(
            spec=spec, backend=detector.backend, threads=settings.threads, load_s=load_s,
            image_index=np.asarray(timed, dtype=np.int64), wall_s=wall, stage_s=stages, predictions=predictions,
            memory=memory, vocabulary_fingerprint=detector.vocab.fingerprint(),
            vocabulary=detector.vocab.to_dict() if spec.is_reference else None,
        )
    finally:
        if not settings.isolate:
            cv2.setNumThreads(cv2_threads)
            if torch_threads is not None:
                sys.modules["torch"].set_num_threads(torch_threads)


# --- the isolated worker: request/result files -------------------------------------------------

def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])      # so a source checkout works uninstalled
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update({key: "1" for key in _BLAS_ENV})
    return env


def _run_isolated(spec: BackendSpec, images: Sequence[Path], settings: RunSettings) -> BackendRun:
    with tempfile.TemporaryDirectory(prefix="hoi-edge-measure-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"spec": spec.to_dict(), "images": [str(p) for p in images],
                                       "settings": asdict(settings)}))
        proc = subprocess.run([sys.executable, "-m", "hoi_edge.validate._worker", str(request)],
                              env=_child_env(), stdin=subprocess.DEVNULL)
        return read_result(request, spec, proc.returncode)


def result_paths(request: Path) -> tuple[Path, Path]:
    return request.with_suffix(".result.json"), request.with_suffix(".result.npz")


def write_result(request: Path, run: BackendRun) -> None:
    meta_path, npz_path = result_paths(request)
    p = run.predictions
    arrays = {"image_index": run.image_index, "wall_s": run.wall_s,
              **{f"stage_{k}": v for k, v in run.stage_s.items()}}
    if p is not None:
        arrays.update(det_image=p.image, det_hoi=p.hoi, det_score=p.score, det_h=p.boxes_h, det_o=p.boxes_o)
    np.savez(npz_path, **arrays)
    meta_path.write_text(json.dumps({
        "ok": True, "backend": run.backend, "threads": run.threads, "load_s": run.load_s,
        "memory": run.memory.to_dict(), "vocabulary_fingerprint": run.vocabulary_fingerprint,
        "vocabulary": run.vocabulary, "has_predictions": p is not None,
    }))


def write_error(request: Path, exc: BaseException) -> None:
    known = isinstance(exc, HOIEdgeError)
    result_paths(request)[0].write_text(json.dumps({
        "ok": False, "error_type": type(exc).__name__ if known else None,
        "message": str(exc) if known else f"{type(exc).__name__}: {exc}",
    }))


def read_result(request: Path, spec: BackendSpec, returncode: int) -> BackendRun:
    meta_path, npz_path = result_paths(request)
    if not meta_path.is_file():
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
        hint = " (out of memory?)" if returncode in (-9, 137) else ""
        raise ValidationError(f"{spec.label} ({spec.path}) {how}{hint} before reporting; see its output above")
    meta = json.loads(meta_path.read_text())
    if not meta["ok"]:
        cls = getattr(_errors, meta["error_type"] or "", None)
        if not (isinstance(cls, type) and issubclass(cls, HOIEdgeError)):
            cls = ValidationError
        raise cls(meta["message"] if meta["error_type"] else f"{spec.label} ({spec.path}) failed: {meta['message']}")
    with np.load(npz_path) as z:
        arrays = {k: z[k] for k in z.files}
    predictions = None
    if meta["has_predictions"]:
        predictions = Predictions.from_arrays(arrays["det_image"], arrays["det_hoi"], arrays["det_score"],
                                              arrays["det_h"], arrays["det_o"], source=spec.label)
    return BackendRun(
        spec=spec, backend=meta["backend"], threads=meta["threads"], load_s=meta["load_s"],
        image_index=arrays["image_index"], wall_s=arrays["wall_s"],
        stage_s={s: arrays[f"stage_{s}"] for s in STAGES}, predictions=predictions,
        memory=MemoryStats.from_dict(meta["memory"]), vocabulary_fingerprint=meta["vocabulary_fingerprint"],
        vocabulary=meta["vocabulary"],
    )
