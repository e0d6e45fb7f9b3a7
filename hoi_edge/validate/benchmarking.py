"""``benchmark``: latency, throughput, peak memory and size of the reference and artifacts on a
folder of images, with every backend pinned to the same thread count, and speed ratios against
the reference measured in the same run (never against numbers from another machine or day)."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hoi_edge.validate.backends import artifact_spec, reference_spec, resolve_device, resolve_threads, unique_labels
from hoi_edge.validate.dataset import load_dataset
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.latency import ARTIFACT_DEVICE, LatencyStats, describe_speedup, device_warning, speedup
from hoi_edge.validate.measure import RunSettings, run_backend
from hoi_edge.validate.report import (GPU_NOTE, MEMORY_NOTE, BackendReport, environment, fmt_mb, fmt_memory,
                                      has_gpu_memory, md_table)

FORMAT = "hoi-edge/benchmark"


@dataclass
class BenchmarkConfig:
    images: Path
    reference: Path | None = None
    artifacts: Sequence[Path] = ()
    warmup: int = 3
    runs: int = 20
    threads: int | None = None
    device: str = "cpu"       # CPU by default: the ratio then compares like with like on the edge CPU
    progress: bool = True
    isolate: bool = True


@dataclass
class BenchmarkReport:
    """``entries[0]`` is the baseline of every ratio: the reference, or the first artifact without one."""

    entries: list[BackendReport]
    settings: dict[str, Any]
    images: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def baseline(self) -> BackendReport:
        return self.entries[0]

    def ratio_lines(self) -> list[str]:
        return [describe_speedup(e.label, e.speedup, self.baseline.label) for e in self.entries[1:]
                if e.speedup is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, "created": self.created, "images": self.images,
                "settings": self.settings, "environment": self.environment, "warnings": list(self.warnings),
                "baseline": self.baseline.label,
                "backends": [{k: v for k, v in e.to_dict().items()
                              if k not in ("accuracy", "map_drop", "agreement", "passed", "failures")}
                             for e in self.entries]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        gpu = has_gpu_memory(self.entries)
        base = self.baseline
        versus = f"vs {base.label}" + (f" ({base.spec.device})" if base.spec.device != ARTIFACT_DEVICE else "")
        head = ["Model", "Size (MB)", "Load (s)", "Median (ms)", "p90 (ms)", "img/s", "Peak RSS MB (+model)",
                *(["GPU peak MB"] if gpu else []), versus]
        rows = [[e.label, f"{e.spec.size_bytes / 2**20:.1f}", f"{e.load_s:.2f}", f"{e.latency.median_ms:.1f}",
                 f"{e.latency.p90_ms:.1f}", f"{e.latency.throughput_ips:.2f}", fmt_memory(e.memory),
                 *([fmt_mb(e.memory.gpu_peak_mb)] if gpu else []), f"{e.speedup:.2f}x"] for e in self.entries]
        s = self.settings
        ref = f"reference on {s['device']}" if s.get("has_reference", True) else "no reference"
        lines = [f"{self.images['num_images']} images from {self.images['source']}; {s['warmup']} warm-up + "
                 f"{s['runs']} timed runs per backend, {s['threads']} threads each; {ref}, artifacts on "
                 f"{s.get('artifact_device', ARTIFACT_DEVICE)}.",
                 "", md_table(head, rows), "", MEMORY_NOTE, *([GPU_NOTE] if gpu else [])]
        if self.ratio_lines():
            lines += ["", *self.ratio_lines()]
        if self.warnings:
            lines += ["", "Warnings:", *[f"- {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"


def benchmark(cfg: BenchmarkConfig) -> BenchmarkReport:
    if cfg.reference is None and not cfg.artifacts:
        raise ValidationError("nothing to benchmark: give --reference CKPT and/or --artifacts DIR")
    dataset = load_dataset(cfg.images)
    device, threads = resolve_device(cfg.device), resolve_threads(cfg.threads)
    specs = ([reference_spec(cfg.reference, device)] if cfg.reference is not None else [])
    specs = unique_labels(specs + [artifact_spec(a) for a in cfg.artifacts])
    settings = RunSettings(warmup=cfg.warmup, runs=cfg.runs, threads=threads, progress=cfg.progress,
                           isolate=cfg.isolate)
    entries: list[BackendReport] = []
    for spec in specs:
        run = run_backend(spec, dataset.paths, settings)
        latency = LatencyStats.from_seconds(run.wall_s, run.stage_s)
        entries.append(BackendReport(spec=spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                                     latency=latency, memory=run.memory,
                                     speedup=speedup(entries[0].latency, latency) if entries else 1.0))
    note = device_warning(device, "benchmark") if cfg.reference is not None else None
    return BenchmarkReport(
        entries=entries, images=dataset.describe(), environment=environment(), warnings=[note] if note else [],
        settings={"warmup": cfg.warmup, "runs": cfg.runs, "threads": threads, "device": device,
                  "reference_device": device if cfg.reference is not None else None,
                  "artifact_device": ARTIFACT_DEVICE, "has_reference": cfg.reference is not None,
                  "isolated": cfg.isolate},
    )
