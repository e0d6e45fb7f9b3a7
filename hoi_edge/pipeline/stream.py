"""Pipelined inference over video and camera frames: independent work overlaps, frames come out in order.

Per frame the pipeline is preprocess -> {detector, CLIP image encoder} -> instance selection -> HOI head ->
scoring. The CLIP image encoder does not depend on the detector, so the two run at the same time; and
while frame t is in the HOI head, frame t+1 is already in the detector. Each unit runs through its
runner's ``submit`` (OpenVINO's AsyncInferQueue over throughput streams; a worker thread per unit for
ONNX Runtime and ExecuTorch, whose ``run`` releases the GIL) or, for a runner without one (the PyTorch
reference), a worker thread per unit here. At most ``depth`` frames are in flight: memory stays bounded
and a frame's latency stays short. Every frame goes through exactly the computations of
:meth:`HOIPipeline.run` with the same compiled networks, so the detections are the synchronous ones. Each
frame keeps the text bank it started with (a server may swap the vocabulary meanwhile), and a source that
fails still gets its frames in flight finished before its error is raised.

A live source that delivers frames faster than they are processed either queues them (OpenCV's own
buffer: latency grows) or, with ``drop_frames``, is read on its own thread keeping only the newest frame
(:class:`LatestFrames`); the frames skipped are counted in :class:`StreamStats`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.pipeline.detector import HOIPipeline, Prediction, TextBank
from hoi_edge.pipeline.postprocess import head_inputs

DEFAULT_DEPTH = 2


@dataclass
class StreamStats:
    """What happened to the frames of one stream: read from the source, processed, skipped."""

    frames_read: int = 0
    frames_done: int = 0
    dropped: int = 0


@dataclass
class StreamResult:
    index: int                 # the frame's position in the source (gaps where frames were dropped)
    frame: np.ndarray          # the RGB frame as read
    prediction: Prediction     # timings: {"latency": s from preprocessing start to final scores, and per unit
                               # the s from its submission to its result}


class _UnitSubmitter:
    """``submit(unit, *arrays) -> Future`` for any runner: its own async ``submit`` when it has one,
    else one worker thread per unit calling the runner's synchronous method."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner
        self._own: dict[str, ThreadPoolExecutor] = {}
        if not callable(getattr(runner, "submit", None)):
            self._own = {u: ThreadPoolExecutor(1, thread_name_prefix=f"hoi-edge-{u}")
                         for u in EXPORT_UNITS}

    def submit(self, unit: str, *arrays: np.ndarray) -> Future:
        if self._own:
            return self._own[unit].submit(getattr(self._runner, unit), *arrays)
        return self._runner.submit(unit, *arrays)

    def close(self) -> None:
        for ex in self._own.values():
            ex.shutdown(wait=True)


class Pipeline:
    """``for index, frame, prediction in Pipeline(detector)(frames)``: overlapped, in order, bounded."""

    def __init__(self, detector: HOIPipeline, depth: int = DEFAULT_DEPTH) -> None:
        if depth < 1:
            raise ValueError(f"pipeline depth must be >= 1, got {depth}")
        self.detector, self.depth = detector, depth

    def __call__(self, frames: Iterable[tuple[int, np.ndarray]],
                 stats: StreamStats | None = None) -> Iterator[StreamResult]:
        stats = stats if stats is not None else StreamStats()
        units = _UnitSubmitter(self.detector.runner)
        head = ThreadPoolExecutor(1, thread_name_prefix="hoi-edge-head")   # one at a time: in order
        pending: deque[tuple[int, np.ndarray, Future]] = deque()
        source = iter(frames)
        failure: Exception | None = None
        try:
            while True:
                try:
                    index, frame = next(source)
                except StopIteration:
                    break
                except Exception as exc:   # noqa: BLE001 - the source died: the frames in flight still finish
                    failure = exc
                    break
                pending.append((index, frame, self._start(units, head, frame)))
                if len(pending) >= self.depth:
                    yield self._collect(pending, stats)
            while pending:
                yield self._collect(pending, stats)
            if failure is not None:
                raise failure
        finally:
            for _, _, fut in pending:      # stopped early: let in-flight work finish before closing
                fut.cancel()
            head.shutdown(wait=True)
            units.close()

    def _start(self, units: _UnitSubmitter, head: ThreadPoolExecutor, frame: np.ndarray) -> Future:
        t0 = time.perf_counter()
        bank = self.detector.bank            # the frame keeps this vocabulary even if it is swapped meanwhile
        hw, det_in, clip_in = self.detector.prepare(frame)
        timings: dict[str, float] = {}
        submitted = time.perf_counter()
        det = _timed(units.submit("detector", det_in), timings, "detector", submitted)
        clip = _timed(units.submit("clip_image", clip_in), timings, "clip_image", submitted)
        return head.submit(self._finish, units, hw, det, clip, t0, bank, timings, submitted)

    def _finish(self, units: _UnitSubmitter, hw: tuple[int, int], det: Future, clip: Future,
                t0: float, bank: TextBank, timings: dict[str, float], submitted: float) -> Prediction:
        d = self.detector
        inst = d.select(hw, det.result(), bank)
        global_emb, patches = clip.result()
        for unit in ("detector", "clip_image"):   # a done-callback may run just after result() returned
            timings.setdefault(unit, time.perf_counter() - submitted)
        head_start = time.perf_counter()
        pair_emb = units.submit("hoi_head", *head_inputs(inst, hw), patches).result()
        timings["hoi_head"] = time.perf_counter() - head_start
        dets = d.score(inst, pair_emb, global_emb, bank)
        timings["latency"] = time.perf_counter() - t0
        return Prediction(detections=dets, instances=inst, timings=timings)

    @staticmethod
    def _collect(pending: deque, stats: StreamStats) -> StreamResult:
        index, frame, fut = pending.popleft()
        result = StreamResult(index, frame, fut.result())
        stats.frames_done += 1
        return result


def _timed(future: Future, timings: dict[str, float], unit: str, start: float) -> Future:
    """Record in ``timings[unit]`` the seconds from ``start`` (its submission) until ``future`` is done
    (waiting for a free request or worker included: what the unit cost this frame in a busy pipeline)."""
    future.add_done_callback(lambda _: timings.setdefault(unit, time.perf_counter() - start))
    return future


def run_concurrent(detector: HOIPipeline, image: np.ndarray) -> Prediction:
    """One image with the detector and the CLIP image encoder running at the same time (single-image
    latency; measured against :meth:`HOIPipeline.run` by ``hoi-edge benchmark --mode throughput``)."""
    if not getattr(detector, "pipelinable", True):
        return detector.run(image)
    return next(Pipeline(detector, depth=1)([(0, image)])).prediction


class LatestFrames:
    """A live source read on a thread of its own that keeps only the newest frame.

    A consumer that falls behind gets the latest frame instead of a queue of stale ones; each frame it
    never took counts in ``stats.dropped``. Iterating yields ``(index in the source, frame)``."""

    def __init__(self, frames: Iterable[np.ndarray], stats: StreamStats | None = None) -> None:
        self.stats = stats if stats is not None else StreamStats()
        self._frames = iter(frames)
        self._cond = threading.Condition()
        self._slot: tuple[int, np.ndarray] | None = None
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="hoi-edge-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for i, frame in enumerate(self._frames):
                with self._cond:
                    if self._stop:
                        break
                    if self._slot is not None:
                        self.stats.dropped += 1
                    self._slot = (i, frame)
                    self.stats.frames_read = i + 1
                    self._cond.notify_all()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            self._error = exc
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()                      # releases the capture in the thread that uses it
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not None or self._done)
                if self._slot is None:
                    if self._error is not None:
                        raise self._error
                    return
                item, self._slot = self._slot, None
            yield item

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
        self._thread.join(timeout)


def predict_stream(detector: HOIPipeline, frames: Iterable[np.ndarray], pipelined: bool = True,
                   drop_frames: bool = False, depth: int = DEFAULT_DEPTH,
                   stats: StreamStats | None = None) -> Iterator[StreamResult]:
    """Detections for every frame of ``frames`` (or, with ``drop_frames``, for the newest frame whenever the
    pipeline has room), in order; ``pipelined=False`` is the plain one-frame-at-a-time path."""
    stats = stats if stats is not None else StreamStats()
    pipelined = pipelined and getattr(detector, "pipelinable", True)   # an end-to-end artifact has no stages
    reader = LatestFrames(frames, stats) if drop_frames else None
    indexed: Iterable[tuple[int, np.ndarray]] = reader if reader is not None else _counted(frames, stats)
    try:
        # one-network (end-to-end) artifacts have no stages to overlap: they run frame by frame
        if pipelined and getattr(detector, "pipelinable", True):
            yield from Pipeline(detector, depth)(indexed, stats)
        else:
            for index, frame in indexed:
                t0 = time.perf_counter()
                pred = detector.run(frame)
                pred.timings["latency"] = time.perf_counter() - t0
                stats.frames_done += 1
                yield StreamResult(index, frame, pred)
    finally:
        if reader is not None:
            reader.close()


def _counted(frames: Iterable[np.ndarray], stats: StreamStats) -> Iterator[tuple[int, np.ndarray]]:
    for i, frame in enumerate(frames):
        stats.frames_read = i + 1
        yield i, frame


def describe(stats: StreamStats) -> str:
    """'40 frames processed, 12 dropped (camera faster than the pipeline)' for the CLI's last line."""
    text = f"{stats.frames_done} frames processed"
    if stats.dropped:
        text += f", {stats.dropped} dropped (the source was faster than the pipeline)"
    return text
