"""Serving several cameras: K simulated MJPEG cameras (127.0.0.1) stream N frames each at F fps into one
``hoi-edge serve`` app (in this process, one shared model); prints each stream's fps, frames processed and
dropped, and latency, as the paste-ready Markdown table of docs/serving.md with its caption.

A camera faster than the pipeline has its surplus frames dropped (the newest frame is always the one
processed), so fps is what the model sustains per stream with K streams sharing the machine, and
processed + dropped = read for every stream. A warm-up round of the same cameras (not reported) comes first.

    python benchmarks/bench_serve.py                        # the default model, 4 cameras x 150 frames at 15 fps
    python benchmarks/bench_serve.py --artifact artifacts/ov-fp32 --cameras 8
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import common  # noqa: F401  (the repository on sys.path)

from hoi_edge.core.cpu import cpu_info


def camera_frames(video: str, frames: int, width: int) -> list[bytes]:
    """The first ``frames`` frames of ``video`` as JPEGs ``width`` pixels wide (what an IP camera sends)."""
    import cv2

    cap = cv2.VideoCapture(video)
    out = []
    while len(out) < frames:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    cap.release()
    if not out:
        sys.exit(f"bench_serve: no frame could be read from {video}")
    return out


def table(snapshots: list[dict]) -> str:
    head = "| camera | fps | processed | dropped | read | latency p50 | latency p95 |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for s in snapshots:
        lat = s["latency_ms"]
        rows.append(f"| {s['camera']} | {s['fps_run']:.1f} | {s['frames_processed']} | {s['dropped']} "
                    f"| {s['frames_read']} | {lat['p50']:.0f} ms | {lat['p95']:.0f} ms |")
    total_fps = sum(s["fps_run"] for s in snapshots)
    done = sum(s["frames_processed"] for s in snapshots)
    dropped = sum(s["dropped"] for s in snapshots)
    read = sum(s["frames_read"] for s in snapshots)
    rows.append(f"| all | {total_fps:.1f} | {done} | {dropped} | {read} | | |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the default model, as 'hoi-edge serve')")
    ap.add_argument("--artifact", default=None, help="an exported artifact folder instead")
    ap.add_argument("--device", default=None)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--frames", type=int, default=150, help="frames each camera sends")
    ap.add_argument("--fps", type=float, default=15.0, help="each camera's frame rate")
    ap.add_argument("--width", type=int, default=640, help="camera frame width (height keeps the aspect)")
    ap.add_argument("--video", default=str(common.SHARED / "videos" / "vtest.avi"))
    ap.add_argument("--warmup-frames", type=int, default=30)
    args = ap.parse_args()

    from hoi_edge.core.noise import configure
    from hoi_edge.serve.app import create_app
    from hoi_edge.serve.config import ServeConfig
    from hoi_edge.testing import run_simulated_cameras

    configure(False)
    jpegs = camera_frames(args.video, args.frames, args.width)
    app = create_app(ServeConfig(model=args.model, artifact=args.artifact, device=args.device))
    streams, engine = app.state.streams, app.state.engine
    try:
        run_simulated_cameras(streams, jpegs, args.cameras, args.warmup_frames, args.fps, timeout=600)
        snapshots, sent, seconds = run_simulated_cameras(streams, jpegs, args.cameras, args.frames, args.fps,
                                                         timeout=3600)
    finally:
        app.state.close()
    for i, s in enumerate(snapshots, 1):
        s["fps_run"], s["camera"] = s["frames_processed"] / seconds, i
    bad = [s["id"] for s, n in zip(snapshots, sent) if s["frames_read"] != n
           or s["frames_processed"] + s["dropped"] != s["frames_read"]]
    threads = _threads(engine.backend)
    print(table(snapshots))
    print()
    print(f"*{args.cameras} simulated MJPEG cameras (127.0.0.1) x {args.frames} frames of "
          f"{os.path.basename(args.video)} at {args.width} px wide, {args.fps:g} fps each, into one `hoi-edge serve` "
          f"({engine.backend}, model {args.artifact or args.model or 'default'}); fps = frames processed / "
          f"{seconds:.1f} s of streaming; after a {args.warmup_frames}-frame warm-up round. "
          f"{cpu_info().describe()}; {threads}. "
          f"Frames accounted for (processed + dropped = read = sent): {'yes' if not bad else 'NO: ' + ', '.join(bad)}. "
          f"`python benchmarks/bench_serve.py --cameras {args.cameras} --frames {args.frames} --fps {args.fps:g}`, "
          f"{time.strftime('%Y-%m-%d')}.*")
    if bad:
        sys.exit(1)


def _threads(backend: str) -> str:
    if backend == "pytorch":
        import torch

        return f"torch {torch.get_num_threads()} threads"
    return f"{backend} default threads"


if __name__ == "__main__":
    main()
