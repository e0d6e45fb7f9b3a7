"""Input sources for ``detect``: an image file, a video file, a camera or a network stream (RTSP, MJPEG over
HTTP, through OpenCV's FFmpeg backend, reopened with backoff when it drops), as a stream of RGB frames,
and atomic writers for the annotated output (temp file, then rename)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hoi_edge.core.atomic import atomic_output
from hoi_edge.core.errors import InputFileError
from hoi_edge.pipeline.preprocess import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


def list_image_files(folder: Path) -> list[Path]:
    """The images of ``folder`` and its subfolders, sorted by path: files with an image suffix (any case),
    hidden files and folders left out. The one rule for every folder of images (``--calib``, ``--val``,
    ``--data``), so the same folder selects the same images everywhere."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


#: URL schemes read through OpenCV's FFmpeg backend: IP cameras (RTSP, MJPEG over HTTP) and network streams.
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


@dataclass(frozen=True)
class Source:
    kind: str            # 'image' | 'video' | 'camera' | 'stream' (a network URL)
    location: str        # path, camera index as text, or URL

    @property
    def live(self) -> bool:
        """A stream without an end of its own: the user stops it, and what was recorded is kept."""
        return self.kind in ("camera", "stream")

    @classmethod
    def parse(cls, spec: str) -> "Source":
        """'photo.jpg', 'clip.mp4', 'camera:0' (or just '0' when no file of that name exists), or a stream
        URL ('rtsp://camera/stream', 'http://camera/video.mjpg')."""
        if spec.lower().startswith(STREAM_SCHEMES):
            return cls("stream", spec)
        path = Path(spec)
        if spec.startswith("camera:") or (spec.isdigit() and not path.exists()):
            index = spec.split(":", 1)[-1] or "0"
            if not index.isdigit():
                raise InputFileError(f"camera index must be a number, as in 'camera:0', not {spec!r}")
            return cls("camera", index)
        if "://" in spec:
            scheme = spec.split("://", 1)[0]
            raise InputFileError(f"{spec}: unsupported URL scheme {scheme!r} "
                                 f"(streams: {', '.join(s[:-3] for s in STREAM_SCHEMES)})")
        if not path.exists():
            raise InputFileError(f"input not found: {spec}")
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return cls("video", spec)
        return cls("image", spec)


@dataclass
class Reconnect:
    """How a network stream that drops is reopened: waits of ``first_wait_s``, doubling up to
    ``max_wait_s``, at most ``attempts`` times in a row (a frame read in between resets the count)."""

    attempts: int = 6
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0
    timeout_ms: int = 10000          # FFmpeg open and read timeout: a silent camera counts as a drop

    def wait_s(self, attempt: int) -> float:
        return min(self.max_wait_s, self.first_wait_s * 2 ** (attempt - 1))


@dataclass
class SourceStats:
    """What a live source did besides delivering frames: reconnections (a frame read again after a
    reopen), reopen attempts, and one line per event."""

    frames: int = 0
    reconnects: int = 0
    attempts: int = 0
    events: list[str] = field(default_factory=list)


def _notify(message: str) -> None:
    print(f"hoi-edge: {message}", file=sys.stderr, flush=True)


def open_capture(source: Source, reconnect: Reconnect | None = None) -> cv2.VideoCapture:
    """The OpenCV capture of a video file, camera or stream URL (FFmpeg backend for URLs, with timeouts)."""
    if source.kind == "camera":
        return cv2.VideoCapture(int(source.location))
    if source.kind == "stream":
        ms = (reconnect or Reconnect()).timeout_ms
        return cv2.VideoCapture(source.location, cv2.CAP_FFMPEG,
                                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return cv2.VideoCapture(source.location)


def iter_frames(source: Source, max_frames: int | None = None, reconnect: Reconnect | None = None,
                stats: SourceStats | None = None, notify: Callable[[str], None] = _notify) -> Iterator[np.ndarray]:
    """RGB frames of ``source``. A source that gives no frame at all fails at once (a wrong URL, camera
    index or file: waiting would not help). A network stream that drops after delivering frames is
    reopened with backoff (``reconnect``), each attempt reported through ``notify``; ``stats.reconnects``
    counts the reopens that delivered frames again. It ends with an error once ``reconnect.attempts``
    attempts in a row fail."""
    stats = stats if stats is not None else SourceStats()
    if source.kind == "image":
        stats.frames += 1
        yield load_image(source.location)
        return
    policy = reconnect or Reconnect()
    cap = open_capture(source, policy)
    failures = 0
    delivered = 0                 # frames of this source (max_frames counts them; stats may be shared)
    try:
        while max_frames is None or delivered < max_frames:
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if ok:
                if failures:
                    stats.reconnects += 1          # the stream is back
                failures = 0
                delivered += 1
                stats.frames += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                continue
            if delivered == 0:
                raise InputFileError(_no_frame_message(source, cap.isOpened()))
            if source.kind != "stream":
                break
            failures += 1
            if failures > policy.attempts:
                raise InputFileError(f"stream {source.location} dropped and did not come back after "
                                     f"{policy.attempts} reconnect attempts")
            wait = policy.wait_s(failures)
            event = (f"stream {source.location} dropped; reconnecting in {wait:.1f} s "
                     f"(attempt {failures}/{policy.attempts})")
            stats.events.append(event)
            notify(event)
            cap.release()
            time.sleep(wait)
            stats.attempts += 1
            cap = open_capture(source, policy)
    finally:
        cap.release()


def _no_frame_message(source: Source, opened: bool) -> str:
    if source.kind == "camera":
        return f"cannot open camera {source.location}" + ("" if opened else " (no such camera, or it is in use)")
    if source.kind == "stream":
        return (f"stream {source.location} " + ("opened but sent no frame" if opened else "could not be opened")
                + " (check the URL, and that the camera or server is reachable; 'hoi-edge --verbose detect ...' "
                  "shows FFmpeg's reason)")
    return f"cannot open video {source.location}" if not opened else f"{source.location}: no frame could be decoded"


def video_fps(source: Source, default: float = 25.0) -> float:
    if source.kind != "video":
        return default
    cap = cv2.VideoCapture(source.location)
    fps = cap.get(cv2.CAP_PROP_FPS) or default
    cap.release()
    return float(fps)


def recording_fps(source: Source) -> float | None:
    """The frame rate an annotated recording of ``source`` is tagged with: a video file's own, or ``None`` for
    a live source: measured from the frames as they are written (:class:`VideoWriter`), because what a
    camera or stream states is often not what it sends (FFmpeg says 25 for any MJPEG stream), and with
    ``--drop-frames`` fewer frames are recorded than sent."""
    return video_fps(source) if source.kind == "video" else None


def frame_count(source: Source) -> int | None:
    """Frames in a video file (as its container states them), None for a live source or when unknown."""
    if source.kind != "video":
        return None
    cap = cv2.VideoCapture(source.location)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    return n if n > 0 else None


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputFileError(f"cannot write image {path}: unsupported extension?")


class VideoWriter:
    """Annotated video written to a temp file and renamed on close.

    ``fps=None``: the rate is measured from the times frames are written (the first
    :attr:`MEASURE_FRAMES` frames or :attr:`MEASURE_S` seconds are held back until then), so a live
    recording plays at the speed it was seen."""

    MEASURE_FRAMES = 20
    MEASURE_S = 2.0
    FALLBACK_FPS = 25.0

    def __init__(self, path: str | Path, fps: float | None) -> None:
        self.path, self.fps = Path(path), fps
        self._ctx = atomic_output(self.path)
        self._tmp = self._ctx.__enter__()
        self._writer: cv2.VideoWriter | None = None
        self._held: list[tuple[float, np.ndarray]] = []

    def write(self, rgb: np.ndarray) -> None:
        if self.fps is None:
            self._held.append((time.monotonic(), rgb))
            if len(self._held) >= self.MEASURE_FRAMES or self._held[-1][0] - self._held[0][0] >= self.MEASURE_S:
                self._release_held()
            return
        self._write(rgb)

    def _release_held(self) -> None:
        times = [t for t, _ in self._held]
        times = times[1:] if len(times) > 4 else times      # the first frame waited for the warm-up: not a rate
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        measured = (len(times) - 1) / span if span > 0 else self.FALLBACK_FPS
        self.fps = float(min(max(round(measured, 1), 1.0), 120.0))
        held, self._held = self._held, []
        for _, frame in held:
            self._write(frame)

    def _write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            h, w = rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputFileError(f"cannot write video {self.path}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, ok: bool = True) -> None:
        if ok and self._held:
            self._release_held()
        if self._writer is not None:
            self._writer.release()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
