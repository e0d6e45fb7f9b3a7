"""The server's streams: one pipelined stream per source, all on the engine's one detector, added and removed
at run time.

Each :class:`StreamWorker` reads its source on a thread of its own (:func:`hoi_edge.data.sources.iter_frames`:
reconnects with backoff) and keeps only the newest frame when the pipeline is busy
(:func:`hoi_edge.pipeline.stream.predict_stream` with ``drop_frames``): every frame read is processed or
counted as dropped. A source that dies is a state and an error in its snapshot (``/v1/streams``), never an
exception in the server. The newest result is kept for the live view; its annotated JPEG is drawn only
when someone asks for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np

from hoi_edge.core.errors import HOIEdgeError, InputFileError
from hoi_edge.data.sources import Reconnect, Source, SourceStats, iter_frames, video_fps
from hoi_edge.pipeline.draw import draw_prediction
from hoi_edge.pipeline.stream import DEFAULT_DEPTH, StreamResult, StreamStats, predict_stream
from hoi_edge.serve.engine import Engine

log = logging.getLogger("hoi_edge.serve")

LATENCY_WINDOW = 500        # frames whose latency the percentiles cover
FPS_WINDOW_S = 5.0          # fps: frames finished in the last 5 s
STOP_TIMEOUT_S = 5.0
JPEG_QUALITY = 80
STATES = ("starting", "running", "reconnecting", "ended", "failed", "stopped")


class _Stopped(Exception):
    """Raised inside the reader (from the reconnect notice) to end a stream that was asked to stop."""


@dataclass
class StreamOptions:
    top: int = 10
    min_score: float = 0.0
    depth: int = DEFAULT_DEPTH
    loop: bool = False                     # video files start again at their end
    max_frames: int | None = None
    reconnect: Reconnect = field(default_factory=Reconnect)


def redact(spec: str) -> str:
    """A source as shown to clients: a URL's password replaced by '***'."""
    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    if parts.password is None:
        return spec
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class StreamWorker:
    """One source through the shared detector; :meth:`snapshot` for the API, :meth:`event` and :meth:`jpeg`
    for the live view. ``on_frame(worker, result)`` is called on the worker's thread for every frame."""

    def __init__(self, stream_id: str, spec: str, engine: Engine, options: StreamOptions,
                 on_frame: Callable[[StreamWorker, StreamResult], None] | None = None) -> None:
        self.id, self.spec, self.label = stream_id, spec, redact(spec)
        self.source = Source.parse(spec)
        self.engine, self.options, self.on_frame = engine, options, on_frame
        self.state = "starting"
        self.error: str | None = None
        self.events: deque[str] = deque(maxlen=20)
        self.stream_stats, self.source_stats = StreamStats(), SourceStats()
        self.seq = 0
        self._latest: StreamResult | None = None
        self._event: tuple[int, dict[str, Any]] | None = None
        self._jpeg: tuple[int, bytes] | None = None
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._finished: deque[float] = deque()
        self._lock, self._draw_lock = threading.Lock(), threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"hoi-edge-stream-{stream_id}", daemon=True)

    # -- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> StreamWorker:
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Ask the stream to end and wait up to ``timeout`` s; False if its reader is still blocked (in a
        camera read or a reconnect wait: it ends by itself at the next one, its thread is a daemon)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            for result in predict_stream(self.engine.detector, self._frames(), drop_frames=True,
                                         depth=self.options.depth, stats=self.stream_stats):
                self._publish(result)
            self.state = "stopped" if self._stop.is_set() else "ended"
        except _Stopped:
            self.state = "stopped"
        except HOIEdgeError as exc:          # a source that cannot be opened or did not come back
            self._fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - a stream never takes the server down; it reports instead
            log.exception("stream %s failed", self.id)
            self._fail(f"{type(exc).__name__}: {exc}")

    def _fail(self, message: str) -> None:
        message = message.replace(self.spec, self.label)       # no camera password in what clients read
        self.error = message
        self.events.append(message)
        self.state = "stopped" if self._stop.is_set() else "failed"

    def _frames(self) -> Iterator[np.ndarray]:
        """The source's frames (a video file paced at its frame rate, as a camera delivers them)."""
        opts, source = self.options, self.source
        period = 1.0 / video_fps(source) if source.kind == "video" else 0.0
        while True:
            due = time.monotonic()
            for frame in iter_frames(source, opts.max_frames, reconnect=opts.reconnect, stats=self.source_stats,
                                     notify=self._notice):
                if self._stop.is_set():
                    return
                self.state = "running"
                yield frame
                if period:
                    due += period
                    time.sleep(max(0.0, due - time.monotonic()))
            at_limit = opts.max_frames is not None and self.source_stats.frames >= opts.max_frames
            if not (opts.loop and source.kind == "video") or at_limit or self._stop.is_set():
                return

    def _notice(self, message: str) -> None:
        if self._stop.is_set():
            raise _Stopped()
        self.state = "reconnecting"
        message = message.replace(self.spec, self.label)
        self.events.append(message)
        log.warning("stream %s: %s", self.id, message)

    def _publish(self, result: StreamResult) -> None:
        now = time.monotonic()
        with self._lock:
            self._latest = result
            self.seq += 1
            self._latencies.append(result.prediction.timings["latency"])
            self._finished.append(now)
            while self._finished and now - self._finished[0] > FPS_WINDOW_S:
                self._finished.popleft()
        if self.on_frame is not None:
            self.on_frame(self, result)

    # -- what clients see -------------------------------------------------------------------------------------
    def fps(self) -> float:
        now = time.monotonic()
        with self._lock:
            recent = sum(1 for t in self._finished if now - t <= FPS_WINDOW_S)
        return recent / max(min(FPS_WINDOW_S, now - self._started), 1e-3)

    def snapshot(self) -> dict[str, Any]:
        """The stream's state and statistics (``GET /v1/streams``)."""
        with self._lock:
            lat = list(self._latencies)
        s = self.stream_stats
        return {
            "id": self.id, "source": self.label, "kind": self.source.kind, "state": self.state, "error": self.error,
            "fps": round(self.fps(), 2), "frames_read": s.frames_read, "frames_processed": s.frames_done,
            "dropped": s.dropped, "reconnects": self.source_stats.reconnects,
            "latency_ms": {"last": _ms(lat[-1] if lat else None), "p50": _ms(percentile(lat, 50)),
                           "p95": _ms(percentile(lat, 95))},
            "events": list(self.events)[-5:], "seq": self.seq,
        }

    def event(self) -> tuple[int, dict[str, Any] | None]:
        """(seq, the newest frame's triplets as sent to the page), built once per frame."""
        with self._lock:
            seq, latest, cached = self.seq, self._latest, self._event
        if latest is None:
            return seq, None
        if cached is not None and cached[0] == seq:
            return cached
        o = self.options
        dets = [d for d in latest.prediction.detections if d.score >= o.min_score][:o.top]
        payload = {"stream": self.id, "seq": seq, "frame": latest.index,
                   "latency_ms": round(latest.prediction.timings["latency"] * 1000, 1),
                   "detections": [d.to_dict() for d in dets]}
        with self._lock:
            self._event = (seq, payload)
        return seq, payload

    def jpeg(self) -> tuple[int, bytes | None]:
        """(seq, the newest frame with its boxes drawn, as JPEG), drawn once per frame and only when asked."""
        with self._draw_lock:
            with self._lock:
                seq, latest, cached = self.seq, self._latest, self._jpeg
            if latest is None:
                return seq, None
            if cached is not None and cached[0] == seq:
                return cached
            o = self.options
            drawn = draw_prediction(latest.frame, latest.prediction, top=o.top, min_score=o.min_score,
                                    class_names=self.engine.detector.spec.detector_classes)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self._jpeg = (seq, buf.tobytes())
            return self._jpeg


class StreamManager:
    """The running streams by id ('s0', 's1', ...); ids are looked up here and never used as anything else."""

    def __init__(self, engine: Engine, options: StreamOptions, max_streams: int = 16,
                 on_frame: Callable[[StreamWorker, StreamResult], None] | None = None,
                 on_remove: Callable[[StreamWorker], None] | None = None) -> None:
        self.engine, self.options, self.max_streams = engine, options, max_streams
        self.on_frame, self.on_remove = on_frame, on_remove
        self._streams: dict[str, StreamWorker] = {}
        self._lock = threading.Lock()
        self._next = 0

    def add(self, spec: str, from_request: bool = False, max_frames: int | None = None) -> StreamWorker:
        """Start a stream (ending after ``max_frames``, if given). Over the API (``from_request``) only network
        stream URLs are accepted: cameras and files are the operator's to give on the command line, so no
        request names a path on this machine."""
        source = Source.parse(spec) if not from_request or "://" in spec else None
        if from_request and (source is None or source.kind != "stream"):
            raise InputFileError(f"{spec!r}: only network stream URLs (rtsp://, http://.../video.mjpg, ...) can be "
                                 "added over the API; cameras and video files are given with --source when the "
                                 "server starts")
        with self._lock:
            live = [w for w in self._streams.values() if w.alive]
            if len(live) >= self.max_streams:
                raise InputFileError(f"this server already runs {len(live)} streams (its limit, --max-streams)")
            stream_id = f"s{self._next}"
            self._next += 1
            options = self.options if max_frames is None else replace(self.options, max_frames=max_frames)
            worker = StreamWorker(stream_id, spec, self.engine, options, self.on_frame)
            self._streams[stream_id] = worker
        return worker.start()

    def get(self, stream_id: str) -> StreamWorker | None:
        with self._lock:
            return self._streams.get(stream_id)

    def list(self) -> list[StreamWorker]:
        with self._lock:
            return list(self._streams.values())

    def remove(self, stream_id: str, timeout: float = STOP_TIMEOUT_S) -> bool:
        with self._lock:
            worker = self._streams.pop(stream_id, None)
        if worker is None:
            return False
        worker.stop(timeout)
        if self.on_remove is not None:
            self.on_remove(worker)
        return True

    def close(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop every stream (together: the waits overlap)."""
        workers = self.list()
        for w in workers:
            w.request_stop()
        deadline = time.monotonic() + timeout
        for w in workers:
            w.stop(max(0.0, deadline - time.monotonic()))
