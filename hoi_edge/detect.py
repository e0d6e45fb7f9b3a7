"""``detect`` as a library call: run a detector over an image, video or camera and write the results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hoi_edge.draw import draw_detections
from hoi_edge.pipeline import HOIDetector
from hoi_edge.postprocess import HOIDetection
from hoi_edge.atomic import atomic_output
from hoi_edge.sources import Source, VideoWriter, iter_frames, video_fps, write_image


@dataclass
class DetectOptions:
    out: str | None = None
    json_out: str | None = None
    top: int = 10
    min_score: float = 0.0
    max_frames: int | None = None
    written: list[Path] = field(default_factory=list)


def default_output(source: Source) -> Path | None:
    if source.kind == "camera":
        return None
    p = Path(source.location)
    return p.with_name(f"{p.stem}_hoi{'.mp4' if source.kind == 'video' else p.suffix}")


def run_detect(detector: HOIDetector, spec: str, opts: DetectOptions) -> Iterator[tuple[int, list[HOIDetection]]]:
    """Yield (frame index, detections) per frame while writing the annotated output and JSON lines."""
    source = Source.parse(spec)
    out = Path(opts.out) if opts.out else default_output(source)
    video = VideoWriter(out, video_fps(source)) if out and source.kind != "image" else None
    json_ctx = atomic_output(opts.json_out) if opts.json_out else None
    json_file = open(json_ctx.__enter__(), "w") if json_ctx else None
    ok, frames = False, 0
    try:
        for i, frame in enumerate(iter_frames(source, opts.max_frames)):
            dets = detector.predict(frame)
            drawn = draw_detections(frame, dets, top=opts.top, min_score=opts.min_score) if out else None
            if video is not None:
                video.write(drawn)
            elif out is not None:
                write_image(out, drawn)
            if json_file:
                json_file.write(json.dumps({"frame": i, "source": spec,
                                            "detections": [d.to_dict() for d in dets]}) + "\n")
            frames += 1
            yield i, dets
        ok = True
    finally:
        # a camera ends when the user stops it (Ctrl-C): keep what was recorded; a file must finish
        keep = ok or (source.live and frames > 0)
        if video is not None:
            video.close(keep)
        if json_file:
            json_file.close()
            json_ctx.__exit__(None if keep else RuntimeError, None if keep else RuntimeError("aborted"), None)
        if keep and out is not None:
            opts.written.append(out)
        if keep and opts.json_out:
            opts.written.append(Path(opts.json_out))
