"""Unlabelled images for ``hoi-edge distill``: a folder of images (read when used) or a video's frames (sampled
evenly, decoded once). Distillation needs no annotations: the teacher's outputs are the targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.sources import VIDEO_SUFFIXES, Source, frame_count, iter_frames, list_image_files
from hoi_edge.pipeline.preprocess import load_image


@dataclass(frozen=True)
class UnlabelledImages:
    """``images[i]`` -> RGB uint8 image i; ``names[i]`` says where it came from (file, or video#frame)."""

    source: Path
    names: tuple[str, ...]
    _files: tuple[Path, ...] = ()
    _frames: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> np.ndarray:
        return self._frames[index] if self._frames else load_image(self._files[index])


def unlabelled_images(source: str | Path, max_images: int | None = None, option: str = "--images") -> UnlabelledImages:
    """The images of a folder (every image file, sorted; the first ``max_images``) or ``max_images`` frames spread
    evenly over a video (default 64); ``option`` names the source in errors."""
    path = Path(source)
    if path.is_dir():
        files = list_image_files(path)[:max_images]
        if not files:
            raise InputFileError(f"{option} {path} holds no images")
        return UnlabelledImages(path, tuple(str(f) for f in files), _files=tuple(files))
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        video = Source("video", str(path))
        count = frame_count(video)         # as the container states it; frames are then decoded once
        if count is None:
            raise InputFileError(f"cannot read video {path} (no frame count)")
        keep = set(np.linspace(0, count - 1, min(max_images or 64, count)).round().astype(int).tolist())
        frames = {i: f for i, f in enumerate(iter_frames(video, max_frames=max(keep) + 1)) if i in keep}
        order = sorted(frames)
        return UnlabelledImages(path, tuple(f"{path}#{i}" for i in order), _frames=tuple(frames[i] for i in order))
    if path.exists():
        raise InputFileError(f"{option} {path} is neither a folder of images nor a video "
                             f"({', '.join(sorted(VIDEO_SUFFIXES))})")
    raise InputFileError(f"{option} not found: {path}")
