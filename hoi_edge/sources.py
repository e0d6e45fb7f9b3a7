"""Input sources for ``detect``: an image file, a video file or a camera, as a stream of RGB frames,
and atomic writers for the annotated output (temp file, then rename)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoi_edge.atomic import atomic_output
from hoi_edge.errors import InputFileError
from hoi_edge.preprocess import load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}


@dataclass(frozen=True)
class Source:
    kind: str            # 'image' | 'video' | 'camera'
    location: str        # path, or camera index as text

    @property
    def live(self) -> bool:
        """A stream without an end of its own: the user stops it, and what was recorded is kept."""
        return self.kind == "camera"

    @classmethod
    def parse(cls, spec: str) -> "Source":
        """'photo.jpg', 'clip.mp4', 'camera:0' (or just '0' when no file of that name exists)."""
        path = Path(spec)
        if spec.startswith("camera:") or (spec.isdigit() and not path.exists()):
            index = spec.split(":", 1)[-1] or "0"
            if not index.isdigit():
                raise InputFileError(f"camera index must be a number, as in 'camera:0', not {spec!r}")
            return cls("camera", index)
        if not path.exists():
            raise InputFileError(f"input not found: {spec}")
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return cls("video", spec)
        return cls("image", spec)


def iter_frames(source: Source, max_frames: int | None = None) -> Iterator[np.ndarray]:
    if source.kind == "image":
        yield load_image(source.location)
        return
    cap = cv2.VideoCapture(int(source.location) if source.kind == "camera" else source.location)
    if not cap.isOpened():
        what = f"camera {source.location}" if source.kind == "camera" else f"video {source.location}"
        raise InputFileError(f"cannot open {what}")
    try:
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                if n == 0:
                    raise InputFileError(f"{source.location}: no frame could be decoded")
                break
            n += 1
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
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
