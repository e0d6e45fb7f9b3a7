"""``hoi-edge benchmark --mode throughput``: frames per second over a video-like stream, the synchronous
path next to the pipelined one (:mod:`hoi_edge.pipeline.stream`), with single-image latency beside it (plain, and
with the detector and CLIP image encoder running concurrently), all measured in one run.

Each backend runs in a fresh process (as ``validate`` does), with ``repeats`` rounds that alternate the
modes, so a neighbour stealing the CPU hits all modes alike; the table gives the median over rounds and
the spread (min-max). The stream is the images decoded up front and cycled to ``frames`` frames (decoding
is not timed). The pipelined detections are compared with the synchronous ones frame by frame.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.validate.backends import BackendSelection

FORMAT = "hoi-edge/throughput"


@dataclass
class ThroughputConfig(BackendSelection):
    frames: int = 28             # frames per timed round (the images cycled)
    repeats: int = 3             # rounds per mode, alternating sync / concurrent / pipelined
    depth: int = 2               # frames in flight in the pipelined mode


@dataclass
class ThroughputResult:
    label: str
    device: str
    sync_ms: list[float]          # per-round median single-image latency, one frame at a time
    concurrent_ms: list[float]    # same, detector and CLIP image encoder concurrently
    sync_fps: list[float]
    pipelined_fps: list[float]
    pipelined_ms: list[float]     # per-round median frame latency inside the pipeline
    identical: bool               # pipelined detections == synchronous ones, every frame
    execution: dict[str, Any] | None = None
    execution_pipelined: dict[str, Any] | None = None

    @property
    def gain(self) -> float:
        return float(np.median(self.pipelined_fps) / np.median(self.sync_fps))

    @property
    def concurrent_gain(self) -> float:
        return float(np.median(self.sync_ms) / np.median(self.concurrent_ms))


@dataclass
class ThroughputReport:
    results: list[ThroughputResult]
    settings: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, "settings": self.settings, "environment": self.environment,
                "backends": [{**asdict(r), "gain": r.gain, "concurrent_gain": r.concurrent_gain}
                             for r in self.results]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        from hoi_edge.validate.environment import cpu_line
        from hoi_edge.validate.markdown import md_table

        head = ["Model", "Device", "Latency ms (sync)", "Latency ms (det ‖ CLIP)", "Frames/s (sync)",
                "Frames/s (pipelined)", "Throughput gain", "Frame latency ms (pipelined)", "Same detections"]
        rows = [[r.label, r.device, _spread(r.sync_ms, 1), _spread(r.concurrent_ms, 1), _spread(r.sync_fps, 2),
                 _spread(r.pipelined_fps, 2), f"{r.gain:.2f}x", _spread(r.pipelined_ms, 1),
                 "yes" if r.identical else "**NO**"] for r in self.results]
        s = self.settings
        lines = [f"{s['frames']} frames per round cycling {s['num_images']} images from {s['images']}; "
                 f"{s['repeats']} rounds per mode (median, min-max); {s['warmup']} warm-up frames; "
                 f"{s['threads']} threads per backend; pipeline depth {s['depth']} frames. "
                 + cpu_line(self.environment), "",
                 md_table(head, rows), "",
                 "Latency: one image at a time (sync: the stages in turn; det ‖ CLIP: the detector and the CLIP "
                 "image encoder at the same time). Frames/s: the whole stream, one frame at a time (sync) or "
                 "pipelined (hoi_edge.pipeline.stream: OpenVINO compiled for throughput with AsyncInferQueue, a worker "
                 "thread per unit elsewhere)."]
        ran = [(r.label, r.execution_pipelined) for r in self.results if r.execution_pipelined]
        if ran:
            lines += ["", "Pipelined mode ran on (as each runtime reports it):"]
            lines += [f"- {label}: " + ", ".join(f"{u} {'+'.join(map(str, e.get('executed') or [e.get('requested')]))}"
                                                 + (f" ({e['streams']} streams)" if e.get("streams") else "")
                                                 for u, e in info.items()) for label, info in ran]
        return "\n".join(lines) + "\n"


def _spread(values: Sequence[float], digits: int) -> str:
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.median(v):.{digits}f} ({v.min():.{digits}f}-{v.max():.{digits}f})"


def benchmark_throughput(cfg: ThroughputConfig) -> ThroughputReport:
    from hoi_edge.validate.environment import environment
    from hoi_edge.validate.errors import ValidationError

    if cfg.frames < 2 or cfg.repeats < 1 or cfg.depth < 1:
        raise ValidationError("--runs must be >= 2 frames, repeats and --depth >= 1")
    chosen = cfg.resolve()
    dataset, threads, ref_device, specs = chosen.dataset, chosen.threads, chosen.device, chosen.specs
    results = []
    for spec in specs:
        if cfg.progress:
            print(f"{spec.label}: measuring sync and pipelined throughput ...", file=sys.stderr, flush=True)
        results.append(_run_isolated(spec.to_dict(), [str(p) for p in dataset.paths], cfg, threads))
    settings = {"images": str(cfg.images), "num_images": len(dataset.paths), "frames": cfg.frames,
                "repeats": cfg.repeats, "warmup": cfg.warmup, "threads": threads, "depth": cfg.depth,
                "artifact_device": cfg.artifact_device,
                "reference_device": ref_device if cfg.reference is not None else None}
    return ThroughputReport(results=results, settings=settings, environment=environment())


def _run_isolated(spec: dict, images: list[str], cfg: ThroughputConfig, threads: int) -> ThroughputResult:
    from hoi_edge.validate.errors import ValidationError
    from hoi_edge.validate.worker import in_fresh_process

    def read(req: Path, returncode: int) -> ThroughputResult:
        out = req.with_suffix(".result.json")
        if not out.is_file():
            raise ValidationError(f"{spec['label']} ({spec['path']}) exited with code {returncode} "
                                  "before reporting; see its output above")
        data = json.loads(out.read_text())
        if "error" in data:
            raise ValidationError(data["error"])
        return ThroughputResult(**data)

    request = {"spec": spec, "images": images, "frames": cfg.frames, "repeats": cfg.repeats, "warmup": cfg.warmup,
               "threads": threads, "depth": cfg.depth}
    return in_fresh_process("hoi_edge.validate.throughput", request, read)


def measure(spec_dict: dict, images: list[str], frames: int, repeats: int, warmup: int, threads: int,
            depth: int) -> ThroughputResult:
    """The body of the worker process: load the backend twice (latency- and throughput-compiled), time."""
    import cv2

    from hoi_edge.pipeline.preprocess import load_image
    from hoi_edge.pipeline.stream import predict_stream, run_concurrent
    from hoi_edge.validate.backends import BackendSpec
    from hoi_edge.validate.measure import execution_info, open_backend

    spec = BackendSpec.from_dict(spec_dict)
    cv2.setNumThreads(threads)
    decoded = [load_image(p) for p in images]
    stream = [decoded[i % len(decoded)] for i in range(frames)]
    sync = open_backend(spec, threads)
    if spec.is_reference:
        piped = sync
    else:
        from hoi_edge.runtime.artifact import load_artifact

        piped = load_artifact(spec.path, num_threads=threads, device=spec.device, throughput=True)
    for f in stream[:warmup]:
        sync.run(f)
        run_concurrent(sync, f)
    for _ in predict_stream(piped, stream[:max(warmup, depth)], depth=depth):
        pass
    out: dict[str, list[float]] = {k: [] for k in ("sync_ms", "concurrent_ms", "sync_fps", "pipelined_fps",
                                                   "pipelined_ms")}
    identical = True
    for r in range(repeats):
        t0 = time.perf_counter()
        lat, reference = [], []
        for f in stream:
            t = time.perf_counter()
            reference.append(_key(sync.run(f).detections))
            lat.append(time.perf_counter() - t)
        out["sync_fps"].append(frames / (time.perf_counter() - t0))
        out["sync_ms"].append(1000 * float(np.median(lat)))
        lat = []
        for f in stream:
            t = time.perf_counter()
            run_concurrent(sync, f)
            lat.append(time.perf_counter() - t)
        out["concurrent_ms"].append(1000 * float(np.median(lat)))
        t0 = time.perf_counter()
        results = list(predict_stream(piped, stream, depth=depth))
        out["pipelined_fps"].append(frames / (time.perf_counter() - t0))
        out["pipelined_ms"].append(1000 * float(np.median([x.prediction.timings["latency"] for x in results])))
        identical &= [x.index for x in results] == list(range(frames)) and \
            [_key(x.prediction.detections) for x in results] == reference
    return ThroughputResult(label=spec.label, device=spec.device, identical=bool(identical),
                            execution=execution_info(sync), execution_pipelined=execution_info(piped), **out)


def _key(dets) -> list[tuple]:
    return [(d.hoi, d.score, tuple(d.human_box), tuple(d.object_box)) for d in dets]


def main(argv: list[str]) -> int:
    req_path = Path(argv[0])
    out = req_path.with_suffix(".result.json")
    try:
        req = json.loads(req_path.read_text())
        result = measure(req["spec"], req["images"], req["frames"], req["repeats"], req["warmup"], req["threads"],
                         req["depth"])
        out.write_text(json.dumps(asdict(result)))
        return 0
    except HOIEdgeError as exc:
        out.write_text(json.dumps({"error": str(exc)}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
