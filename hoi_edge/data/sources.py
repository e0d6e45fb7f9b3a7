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
    """What a live source did besides delivering frames: reconnects, and one line per event."""

    frames: int = 0
    reconnects: int = 0
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
    """RGB frames of ``source``. A network stream that drops (or does not open) is reopened with backoff
    (``reconnect``), each attempt reported through ``notify`` and counted in ``stats``; it ends with an
    error once ``reconnect.attempts`` attempts in a row fail."""
    stats = stats if stats is not None else SourceStats()
    if source.kind == "image":
        stats.frames += 1
        yield load_image(source.location)
        return
    policy = reconnect or Reconnect()
    cap = open_capture(source, policy)
    failures = 0
    try:
        while max_frames is None or stats.frames < max_frames:
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            if ok:
                failures = 0
                stats.frames += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                continue
            if source.kind != "stream":
                if not cap.isOpened():
                    what = f"camera {source.location}" if source.kind == "camera" else f"video {source.location}"
                    raise InputFileError(f"cannot open {what}")
                if stats.frames == 0:
                    raise InputFileError(f"{source.location}: no frame could be decoded")
                break
            failures += 1
            if failures > policy.attempts:
                raise InputFileError(f"stream {source.location} "
                                     + ("could not be opened" if stats.frames == 0 else "dropped")
                                     + f" and did not come back after {policy.attempts} reconnect attempts")
            wait = policy.wait_s(failures)
            event = (f"stream {source.location} {'did not open' if stats.frames == 0 else 'dropped'}; "
                     f"reconnecting in {wait:.1f} s (attempt {failures}/{policy.attempts})")
            stats.events.append(event)
            notify(event)
            cap.release()
            time.sleep(wait)
            stats.reconnects += 1
            cap = open_capture(source, policy)
    finally:
        cap.release()


def video_fps(source: Source, default: float = 25.0) -> float:
    if source.kind != "video":
        return default
    cap = cv2.VideoCapture(source.location)
    fps = cap.get(cv2.CAP_PROP_FPS) or default
    cap.release()
    return float(fps)


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    with atomic_output(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise InputFileError(f"cannot write image {path}: unsupported extension?")


class VideoWriter:
    """Annotated video written to a temp file and renamed on close."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        self._ctx = atomic_output(self.path)
        self._tmp = self._ctx.__enter__()
        self._writer: cv2.VideoWriter | None = None

    def write(self, rgb: np.ndarray) -> None:
        if self._writer is None:
            h, w = rgb.shape[:2]
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self._writer.isOpened():
                raise InputFileError(f"cannot write video {self.path}")
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
        if ok:
            self._ctx.__exit__(None, None, None)
        else:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
