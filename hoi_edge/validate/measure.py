"""Measure one backend over a list of images in this process: warm-up (untimed), then timed
runs, keeping the detections, the kept instances and per-stage timings.

Running it in a fresh process (the default) is :mod:`hoi_edge.validate.worker`'s job.

Threads: ``RunSettings.threads`` goes to the runtime (``torch.set_num_threads`` for the
reference, ExecuTorch's own threadpool, ``INFERENCE_NUM_THREADS`` for OpenVINO,
``intra_op_num_threads`` for ONNX Runtime) and to OpenCV (letterbox resize); NumPy's BLAS is pinned to one thread in
every isolated run (see :mod:`hoi_edge.validate.worker`).

Imports: a worker imports only its own runtime (PyTorch for the reference and ExecuTorch, just
OpenVINO or ONNX Runtime for those artifacts), and does so before the memory baseline, so
``Peak RSS`` is what that backend costs on the device and ``(+model)`` excludes the import.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hoi_edge.eval import Predictions
from hoi_edge.pipeline.detector import STAGES
from hoi_edge.targets_registry import TARGETS
from hoi_edge.validate.backends import BackendSpec
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.memory import MemoryStats, current_rss_mb, peak_rss_mb


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
    instances: "KeptInstances | None" = None     # first pass only, like ``predictions``
    execution: dict[str, Any] | None = None      # per unit: device asked for, what ran it (runner.execution_info)
    # the detector's instances before the pipeline's cut (score >= 0.01, NMS; first pass; box_ap.detector_instances)
    candidates: "KeptInstances | None" = None
    box_threshold: float | None = None           # the pipeline's detector score threshold


@dataclass
class KeptInstances:
    """The human and object instances the pipeline kept on each image (``Prediction.instances``,
    valid rows only): what box AP compares between a backend and the reference."""

    image: np.ndarray       # (N,) image index
    boxes: np.ndarray       # (N, 4) xyxy pixels
    classes: np.ndarray     # (N,) detector class id
    scores: np.ndarray      # (N,)
    human: np.ndarray       # (N,) bool

    @classmethod
    def collect(cls, per_image: Sequence[tuple[int, Any]]) -> "KeptInstances":
        """From (image index, :class:`~hoi_edge.pipeline.postprocess.Instances`) pairs; padding rows dropped."""
        cols: dict[str, list[np.ndarray]] = {"image": [np.zeros(0, np.int64)], "boxes": [np.zeros((0, 4))],
                                             "classes": [np.zeros(0, np.int64)], "scores": [np.zeros(0)],
                                             "human": [np.zeros(0, bool)]}
        for i, inst in per_image:
            v = np.asarray(inst.valid, bool)
            cols["image"].append(np.full(int(v.sum()), i, dtype=np.int64))
            cols["boxes"].append(np.asarray(inst.boxes, np.float64).reshape(-1, 4)[v])
            cols["classes"].append(np.asarray(inst.classes, np.int64)[v])
            cols["scores"].append(np.asarray(inst.scores, np.float64)[v])
            cols["human"].append(np.asarray(inst.human, bool)[v])
        return cls(**{k: np.concatenate(v) for k, v in cols.items()})

    @classmethod
    def collect_boxes(cls, per_image: Sequence[tuple[int, Any]], person_class: int) -> "KeptInstances":
        """From (image index, :class:`~hoi_edge.validate.box_ap.ImageBoxes`) pairs."""
        from types import SimpleNamespace

        return cls.collect([(i, SimpleNamespace(valid=np.ones(len(b.classes), bool), boxes=b.boxes, classes=b.classes,
                                                scores=b.scores, human=b.classes == person_class))
                            for i, b in per_image])

    def to_arrays(self, prefix: str = "inst_") -> dict[str, np.ndarray]:
        return {f"{prefix}{k}": getattr(self, k) for k in ("image", "boxes", "classes", "scores", "human")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "inst_") -> "KeptInstances":
        return cls(**{k: arrays[f"{prefix}{k}"] for k in ("image", "boxes", "classes", "scores", "human")})

    def of_image(self, i: int) -> dict[str, np.ndarray]:
        m = self.image == i
        return {"boxes": self.boxes[m], "classes": self.classes[m], "scores": self.scores[m], "human": self.human[m]}


def _import_reference_runtime() -> None:
    import torch  # noqa: F401

    import hoi_edge.runtime.torch_runner  # noqa: F401
    import hoi_edge.weights.checkpoint  # noqa: F401


def import_runtime(spec: BackendSpec) -> None:
    """Import ``spec``'s runtime now, so the baseline RSS includes it: the PyTorch reference's, or the target's
    runner and what its entry in :mod:`hoi_edge.targets_registry` preloads. Only the reference and ExecuTorch
    (whose Python runtime takes torch tensors) pull in PyTorch. A missing package is left for
    :func:`open_backend` to report in its own words."""
    try:
        if spec.target == "pytorch":
            _import_reference_runtime()
        elif spec.target in TARGETS:
            TARGETS[spec.target].load_runner()
            TARGETS[spec.target].preload()
    except ImportError:
        return


def execution_info(detector) -> dict[str, Any] | None:
    """What each unit ran on, as the runtime reports it (artifacts); ``None`` for the PyTorch reference."""
    info = getattr(detector.runner, "execution_info", None)
    return info() if callable(info) else None


def open_backend(spec: BackendSpec, threads: int | None):
    """The detector for ``spec`` with ``threads`` applied to its runtime."""
    if spec.is_reference:
        import torch

        from hoi_edge.loader import HOIDetector

        if spec.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValidationError(f"device {spec.device!r} requested for the reference, but PyTorch sees no GPU")
        if threads:
            torch.set_num_threads(threads)
        return HOIDetector.from_checkpoint(spec.path, device=spec.device)
    from hoi_edge.loader import HOIDetector

    return HOIDetector.from_artifact(spec.path, num_threads=threads, device=spec.device)


def _cuda_torch(spec: BackendSpec):
    """``torch`` when ``spec`` runs on a GPU PyTorch can see, else ``None`` (no torch import)."""
    if not spec.device.startswith("cuda"):
        return None
    import torch

    return torch if torch.cuda.is_available() else None


def measure_here(spec: BackendSpec, images: Sequence[Path], settings: RunSettings,
                 measure_memory: bool = True) -> BackendRun:
    """Load, warm up and time ``spec`` in this process (the body of the isolated worker).

    PyTorch is imported only when ``spec`` needs it (see :func:`import_runtime`), or in a
    shared process (``isolate=False``) to restore its thread count afterwards."""
    from tqdm import tqdm

    with BackendSession(spec, images, settings, measure_memory) as session:
        bar = tqdm(total=settings.warmup + len(session.timed), desc=spec.label, unit="img",
                   disable=not settings.progress, leave=True, dynamic_ncols=True)
        with bar:
            bar.set_postfix_str("warm-up")
            session.warm_up(bar.update)
            bar.set_postfix_str("timed")
            for r in range(len(session.timed)):
                session.time_run(r)
                bar.update()
        return session.result()


class BackendSession:
    """One loaded backend that times one run at a time: :func:`measure_here` drives it in a loop, and a
    benchmark worker drives it run by run from its parent, so that backends can be interleaved
    (a machine that gets busy half-way then slows every backend alike, not only the last ones)."""

    def __init__(self, spec: BackendSpec, images: Sequence[Path], settings: RunSettings,
                 measure_memory: bool = True) -> None:
        import cv2

        self.spec, self.images, self.settings, self.measure_memory = spec, list(images), settings, measure_memory
        self._torch_threads = None
        if not settings.isolate:
            import torch

            self._torch_threads = torch.get_num_threads()
        self._cv2_threads = cv2.getNumThreads()
        if settings.threads:
            cv2.setNumThreads(settings.threads)   # letterbox resize: same pool size for every backend
        try:
            import_runtime(spec)
            self.gpu = _cuda_torch(spec)
            if self.gpu is not None:
                self.gpu.cuda.reset_peak_memory_stats()
            self.baseline = current_rss_mb() if measure_memory else None
            start = time.perf_counter()
            self.detector = open_backend(spec, settings.threads)
            self.load_s = time.perf_counter() - start
        except BaseException:
            self.close()
            raise
        n = len(self.images)
        self.timed = settings.timed_images(n)
        self.keep = n if settings.runs is None else 0          # detections of the first pass only
        self.wall = np.zeros(len(self.timed))
        self.stages = {s: np.zeros(len(self.timed)) for s in STAGES}
        self._det: dict[str, list] = {"image": [], "hoi": [], "score": [], "h": [], "o": []}
        self._kept: list[tuple[int, Any]] = []
        self._candidates: list[tuple[int, Any]] = []

    def __enter__(self) -> "BackendSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Give a shared process (``isolate=False``) its thread settings back."""
        if not self.settings.isolate:
            import cv2

            cv2.setNumThreads(self._cv2_threads)
            if self._torch_threads is not None:
                sys.modules["torch"].set_num_threads(self._torch_threads)

    def warm_up(self, step=lambda: None) -> None:
        from hoi_edge.pipeline.preprocess import load_image

        for w in range(self.settings.warmup):
            self.detector.run(load_image(self.images[w % len(self.images)]))
            step()

    def time_run(self, r: int) -> float:
        """Timed run ``r`` (image ``timed[r]``); returns its seconds."""
        from hoi_edge.pipeline.preprocess import load_image

        i = self.timed[r]
        image = load_image(self.images[i])              # decoding is not part of the latency
        t0 = time.perf_counter()
        pred = self.detector.run(image)
        self.wall[r] = time.perf_counter() - t0
        for s in STAGES:
            self.stages[s][r] = pred.timings.get(s, 0.0)
        if r < self.keep:
            self._kept.append((i, pred.instances))
            if pred.detector_outputs is not None:
                from hoi_edge.validate.box_ap import detector_instances

                self._candidates.append((i, detector_instances(self.detector.spec, self.detector.labels,
                                                               pred.detector_outputs, image.shape[:2])))
            for d in pred.detections:
                self._det["image"].append(i)
                self._det["hoi"].append(d.hoi)
                self._det["score"].append(d.score)
                self._det["h"].append(d.human_box)
                self._det["o"].append(d.object_box)
        return float(self.wall[r])

    def result(self) -> BackendRun:
        spec, det, detector = self.spec, self._det, self.detector
        if self.measure_memory:
            peak, method = peak_rss_mb()
            gpu_mb = self.gpu.cuda.max_memory_allocated() / 2**20 if self.gpu is not None else None
            memory = MemoryStats(peak, self.baseline if peak is not None else None, gpu_mb, method)
        else:
            memory = MemoryStats.not_measured("in-process run")
        predictions = None
        if self.keep:
            predictions = Predictions.from_arrays(det["image"], det["hoi"], det["score"],
                                                  np.reshape(det["h"], (-1, 4)), np.reshape(det["o"], (-1, 4)),
                                                  source=spec.label)
        return BackendRun(
            spec=spec, backend=detector.backend, threads=self.settings.threads, load_s=self.load_s,
            image_index=np.asarray(self.timed, dtype=np.int64), wall_s=self.wall, stage_s=self.stages,
            predictions=predictions, memory=memory, vocabulary_fingerprint=detector.vocab.fingerprint(),
            vocabulary=detector.vocab.to_dict() if spec.is_reference else None,
            instances=KeptInstances.collect(self._kept) if self.keep else None,
            execution=execution_info(detector),
            candidates=(KeptInstances.collect_boxes(self._candidates, detector.labels.person_class)
                        if self._candidates else None),
            box_threshold=float(detector.spec.box_score_threshold),
        )
