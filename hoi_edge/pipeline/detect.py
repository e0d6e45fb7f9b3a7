"""``detect`` as a library call: run a detector over an image, a folder or glob of images, a video or a
camera, and write the annotated output and the detections as JSON lines.

The JSON lines are the evaluator's prediction format (``hoi-edge eval --pred`` reads them as they
are): one object per image, ``{"image": NAME, "detections": [{"hoi", "score", "human_box",
"object_box", ...}, ...]}``, with a line for every image even when it has no detection. ``NAME``
is the file name (HICO-DET's GT names images by file name); ``source`` (the path given) and, for
video and camera frames, ``frame`` (0-based index; ``image`` is then ``<stem>_frame<N>``) are extra
keys the evaluator ignores.

Nothing finished is lost: each line is written (one ``write`` of the whole line, unbuffered) as soon
as its image or frame is done, so a run stopped by Ctrl-C, a crash or SIGKILL leaves every finished
line readable; annotated images are written atomically one by one. In a folder or glob run, an image
that cannot be read is reported (file and reason) and skipped, and the run goes on
(``fail_fast`` stops at the first one instead).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hoi_edge.core.atomic import check_writable
from hoi_edge.core.errors import InputFileError
from hoi_edge.data.sources import (
    IMAGE_SUFFIXES,
    Reconnect,
    Source,
    SourceStats,
    VideoWriter,
    frame_count,
    iter_frames,
    recording_fps,
    write_image,
)
from hoi_edge.pipeline.detector import HOIPipeline
from hoi_edge.pipeline.draw import draw_prediction
from hoi_edge.pipeline.postprocess import HOIDetection
from hoi_edge.pipeline.stream import StreamStats, predict_stream

_GLOB_CHARS = set("*?[")


@dataclass
class DetectOptions:
    """``out``: the annotated image/video, or a folder for a folder or glob of images (default: in the
    working directory, never next to the input). ``json_out``: the JSON-lines file. ``fail_fast``: stop a
    folder run at the first image that cannot be read (default: report it, skip it, go on).

    After a run: ``written`` lists the outputs, ``failed`` the (file, reason) of every image skipped."""

    out: str | None = None
    json_out: str | None = None
    top: int = 10
    min_score: float = 0.0
    max_frames: int | None = None
    draw: bool = True
    pipeline: bool = True          # video/camera/stream: overlap the stages (hoi_edge.pipeline.stream); same detections
    drop_frames: bool = False      # live sources: skip frames the pipeline has no room for (counted)
    fail_fast: bool = False
    reconnect: Reconnect | None = None   # how a dropped network stream is reopened (default: Reconnect())
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    stream_stats: StreamStats = field(default_factory=StreamStats)
    source_stats: SourceStats = field(default_factory=SourceStats)


@dataclass(frozen=True)
class DetectResult:
    """One image or frame done: its detections, or (folder runs) why it was skipped.

    ``position`` counts the images or frames done so far (1-based, skipped ones included); ``total`` is
    how many there are when known (a folder, a video file), else None (a camera or stream)."""

    name: str
    detections: list[HOIDetection]
    position: int
    total: int | None
    error: str | None = None


def image_list(spec: str) -> list[Path] | None:
    """The images a folder or a glob pattern names (sorted), or ``None`` for a single source."""
    if "://" in spec:
        return None
    path = Path(spec)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputFileError(f"{spec}: no images in this folder (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
        return images
    if _GLOB_CHARS & set(spec) and not path.exists():
        images = sorted(Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputFileError(f"no image matches {spec!r}")
        return images
    return None


def default_output(spec: str) -> Path | None:
    """Where the annotated result goes without ``--out``: the working directory (the input's folder is
    often a data set that calibration, validation or tests read). ``None`` for a camera."""
    images = image_list(spec)
    if images is not None:
        base = Path(spec.rstrip("/")).name if Path(spec).is_dir() else "detect"
        return Path.cwd() / f"{base}_hoi"
    source = Source.parse(spec)
    if source.kind == "camera":
        return None
    p = Path(source.location)
    return Path.cwd() / f"{p.stem}_hoi{'.mp4' if source.kind == 'video' else p.suffix}"


def check_outputs(spec: str, opts: DetectOptions) -> Path | None:
    """Resolve and check the outputs before any model is loaded: one line if they cannot be written."""
    out = Path(opts.out) if opts.out else default_output(spec) if opts.draw else None
    if out is not None:
        if image_list(spec) is not None and out.suffix.lower() in IMAGE_SUFFIXES:
            raise InputFileError(f"--out {out}: {spec} names several images, so --out must be a folder")
        check_writable(out, "--out")
    if opts.json_out:
        check_writable(opts.json_out, "--json")
    return out


def detection_record(name: str, dets: list[HOIDetection], **extra: object) -> dict:
    """One JSON line: the evaluator's ``{"image", "detections"}`` plus ``extra`` keys it ignores."""
    return {"image": name, "detections": [d.to_dict() for d in dets], **extra}


class JsonLines:
    """A JSON-lines file written as results finish: every record is one ``os.write`` of the whole line
    (no buffer to lose), so a process stopped at any moment leaves only whole lines behind it. The file is
    created (or truncated) at the first record, or empty by :meth:`close` after a run that had none."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lines = 0
        self._fd: int | None = None

    def write(self, record: dict) -> None:
        if self._fd is None:
            self._open()
        data = (json.dumps(record) + "\n").encode()
        while data:                                      # a short write (signal, full disk) continues, never splits
            data = data[os.write(self._fd, data):]
        self.lines += 1

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)

    def close(self, create: bool = True) -> None:
        """Close; with ``create``, a run that wrote no line still leaves an (empty) file."""
        if self._fd is None and create:
            self._open()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def run_detect(detector: HOIPipeline, spec: str, opts: DetectOptions) -> Iterator[DetectResult]:
    """Yield a :class:`DetectResult` per image or frame while writing the annotated output and JSON lines."""
    out = check_outputs(spec, opts)
    images = image_list(spec)
    json_file = JsonLines(opts.json_out) if opts.json_out else None
    finished = False
    try:
        if images is not None:
            yield from _run_images(detector, images, out, json_file, opts)
        else:
            yield from _run_stream(detector, spec, out, json_file, opts)
        finished = True
    finally:
        if json_file is not None:
            # what finished stays: lines are written as they finish (an interrupted video keeps its lines too)
            json_file.close(create=finished)
            if json_file.lines or finished:
                opts.written.append(json_file.path)


def _draw(detector: HOIPipeline, image: np.ndarray, pred, opts: DetectOptions) -> np.ndarray:
    return draw_prediction(image, pred, top=opts.top, min_score=opts.min_score,
                           class_names=detector.spec.detector_classes)


def _run_images(detector: HOIPipeline, images: list[Path], out: Path | None, json_file: JsonLines | None,
                opts: DetectOptions) -> Iterator[DetectResult]:
    from hoi_edge.pipeline.preprocess import load_image

    for position, path in enumerate(images, start=1):
        try:
            image = load_image(path)
            pred = detector.run(image)           # checks the image too (a 1x1 image is refused)
        except InputFileError as exc:            # one bad file must not cost the others: report, skip, go on
            if opts.fail_fast:
                raise
            opts.failed.append((str(path), str(exc)))
            yield DetectResult(path.name, [], position, len(images), error=str(exc))
            continue
        if out is not None:
            target = out / f"{path.stem}_hoi{path.suffix}"
            write_image(target, _draw(detector, image, pred, opts))     # atomic: whole or absent
            opts.written.append(target)
        if json_file is not None:
            json_file.write(detection_record(path.name, pred.detections, source=str(path)))
        yield DetectResult(path.name, pred.detections, position, len(images))


def _run_stream(detector: HOIPipeline, spec: str, out: Path | None, json_file: JsonLines | None,
                opts: DetectOptions) -> Iterator[DetectResult]:
    source = Source.parse(spec)
    if opts.drop_frames and not source.live:
        raise InputFileError(f"--drop-frames is for live sources (camera, stream URL), not {spec}")
    video = VideoWriter(out, recording_fps(source)) if out and source.kind != "image" else None
    ok, frames = False, 0
    stem = Path(source.location).stem if source.kind != "camera" else f"camera{source.location}"
    total = 1 if source.kind == "image" else frame_count(source)
    if total is not None and opts.max_frames is not None:
        total = min(total, opts.max_frames)
    source_frames = iter_frames(source, opts.max_frames, reconnect=opts.reconnect, stats=opts.source_stats)
    try:
        for result in predict_stream(detector, source_frames, pipelined=opts.pipeline and source.kind != "image",
                                     drop_frames=opts.drop_frames, stats=opts.stream_stats):
            i, frame, pred = result.index, result.frame, result.prediction
            drawn = _draw(detector, frame, pred, opts) if out else None
            if video is not None:
                video.write(drawn)
            elif out is not None:
                write_image(out, drawn)
            if source.kind == "image":
                name, extra = Path(source.location).name, {"source": spec}
            else:
                name, extra = f"{stem}_frame{i:06d}", {"source": spec, "frame": i}
            if json_file is not None:
                json_file.write(detection_record(name, pred.detections, **extra))
            frames += 1
            yield DetectResult(name, pred.detections, i + 1, total)
        ok = True
    finally:
        # a camera ends when the user stops it (Ctrl-C): keep what was recorded; a video file must finish
        # (an mp4 cut short has no index), though its JSON lines stay
        keep = ok or (source.live and frames > 0)
        if video is not None:
            video.close(keep)
        if keep and out is not None:
            opts.written.append(out)
