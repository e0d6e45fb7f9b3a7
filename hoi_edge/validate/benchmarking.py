"""``benchmark``: latency, throughput, peak memory and size of the reference and artifacts on a
folder of images, with every backend pinned to the same thread count, and speed ratios against
the reference measured in the same run (never against numbers from another machine or day)."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.validate.backends import BackendSelection
from hoi_edge.validate.environment import CpuMeter, cpu_line, environment
from hoi_edge.validate.latency import ARTIFACT_DEVICE, LatencyStats, describe_speedup, device_warning, speedup
from hoi_edge.validate.markdown import (
    GPU_NOTE,
    MEMORY_NOTE,
    execution_lines,
    fmt_mb,
    fmt_memory,
    has_gpu_memory,
    md_table,
)
from hoi_edge.validate.measure import RunSettings
from hoi_edge.validate.report import BackendReport
from hoi_edge.validate.worker import run_backend, run_interleaved

FORMAT = "hoi-edge/benchmark"


@dataclass
class BenchmarkConfig(BackendSelection):
    runs: int = 20
    isolate: bool = True      # each backend in a fresh process, interleaved run by run


@dataclass
class BenchmarkReport:
    """``entries[0]`` is the baseline of every ratio: the reference, or the first artifact without one."""

    entries: list[BackendReport]
    settings: dict[str, Any]
    images: dict[str, Any]
    environment: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    noise: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def baseline(self) -> BackendReport:
        return self.entries[0]

    @property
    def noisy(self) -> list[str]:
        """Why these timings should not be published (a busy machine, a wide spread); empty if none."""
        return noise_warnings(self.noise)

    def ratio_lines(self) -> list[str]:
        return [describe_speedup(e.label, e.speedup, self.baseline.label) for e in self.entries[1:]
                if e.speedup is not None]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": 1, "created": self.created, "images": self.images,
                "settings": self.settings, "environment": self.environment, "warnings": list(self.warnings),
                "noise": self.noise,
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
        spread = self.noise.get("spread") or {}
        head = ["Model", "Size (MB)", "Load (s)", "Median (ms)", "p90 (ms)", "Spread", "img/s",
                "Peak RSS MB (+model)", *(["GPU peak MB"] if gpu else []), versus]
        rows = [[e.label, f"{e.spec.size_bytes / 2**20:.1f}", f"{e.load_s:.2f}", f"{e.latency.median_ms:.1f}",
                 f"{e.latency.p90_ms:.1f}", _percent(spread.get(e.label)), f"{e.latency.throughput_ips:.2f}",
                 fmt_memory(e.memory), *([fmt_mb(e.memory.gpu_peak_mb)] if gpu else []), f"{e.speedup:.2f}x"]
                for e in self.entries]
        s = self.settings
        ref = f"reference on {s['device']}" if s.get("has_reference", True) else "no reference"
        lines = [f"{self.images['num_images']} images from {self.images['source']}; {s['warmup']} warm-up + "
                 f"{s['runs']} timed runs per backend, {s['threads']} threads each; {ref}, artifacts on "
                 f"{s.get('artifact_device', ARTIFACT_DEVICE)}.",
                 "", md_table(head, rows), "", MEMORY_NOTE, *([GPU_NOTE] if gpu else []), machine_line(self.noise),
                 cpu_line(self.environment),
                 *execution_lines(self.entries)]
        if self.ratio_lines():
            lines += ["", *self.ratio_lines()]
        if self.warnings:
            lines += ["", "Warnings:", *[f"- {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"


def benchmark(cfg: BenchmarkConfig) -> BenchmarkReport:
    chosen = cfg.resolve()
    dataset, device, threads, specs = chosen.dataset, chosen.device, chosen.threads, chosen.specs
    settings = RunSettings(warmup=cfg.warmup, runs=cfg.runs, threads=threads, progress=cfg.progress,
                           isolate=cfg.isolate)
    machine: dict[str, Any] = {}
    if cfg.isolate and len(specs) > 1:
        runs = run_interleaved(specs, dataset.paths, settings, machine)
        for r in runs:
            if isinstance(r, HOIEdgeError):
                raise r
    else:
        meter = CpuMeter([])
        runs = [run_backend(spec, dataset.paths, settings) for spec in specs]
        machine.update(meter.stop(), other_processes_cpu=None)    # our workers' CPU time is not known here
    entries: list[BackendReport] = []
    for spec, run in zip(specs, runs):
        latency = LatencyStats.from_seconds(run.wall_s, run.stage_s)
        entries.append(BackendReport(spec=spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                                     latency=latency, memory=run.memory, execution=run.execution,
                                     speedup=speedup(entries[0].latency, latency) if entries else 1.0))
    note = device_warning(device, "benchmark") if cfg.reference is not None else None
    noise = {**machine, "interleaved": cfg.isolate and len(specs) > 1,
             "spread": {e.label: relative_spread(run.wall_s) for e, run in zip(entries, runs)}}
    return BenchmarkReport(
        entries=entries, images=dataset.describe(), environment=environment(),
        warnings=([note] if note else []) + noise_warnings(noise), noise=noise,
        settings={"warmup": cfg.warmup, "runs": cfg.runs, "threads": threads, "device": device,
                  "reference_device": device if cfg.reference is not None else None,
                  "artifact_device": cfg.artifact_device or ARTIFACT_DEVICE, "has_reference": cfg.reference is not None,
                  "isolated": cfg.isolate},
    )


def _percent(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f} %"


def machine_line(noise: dict[str, Any]) -> str:
    """The conditions of the timing: interleaving, other processes' CPU use, load average, spread."""
    how = "backends interleaved run by run" if noise.get("interleaved") else "backends timed one after another"
    other = noise.get("other_processes_cpu")
    busy = f"other processes used {100 * other:.0f} % of the CPUs" if other is not None else "other processes' CPU use not measured"
    load = noise.get("load_average_1m_before")
    return (f"Timing: {how}; {busy} meanwhile" + (f", 1-min load average {load:.2f} before" if load is not None else "")
            + "; Spread: interquartile range of the timed runs / median.")


BUSY_CPU_FRACTION = 0.10      # other processes used more than 10 % of all CPUs while we timed
WIDE_SPREAD = 0.25            # interquartile range of a backend's runs above 25 % of its median


def relative_spread(wall_s: np.ndarray) -> float | None:
    """(p75 - p25) / median of a backend's timed runs: robust to a single outlier, large when the
    machine's speed changed during the runs."""
    ms = np.asarray(wall_s, dtype=np.float64)
    if ms.size < 4 or np.median(ms) <= 0:
        return None
    q25, q50, q75 = np.percentile(ms, [25, 50, 75])
    return float((q75 - q25) / q50)


def noise_warnings(noise: dict[str, Any]) -> list[str]:
    """Why the machine was too noisy for ratios to be trusted (and pasted anywhere)."""
    out = []
    other = noise.get("other_processes_cpu")
    if other is not None and other > BUSY_CPU_FRACTION:
        out.append(f"machine busy: other processes used {100 * other:.0f} % of the {noise.get('logical_cpus')} CPUs "
                   f"while the backends were timed (1-min load average {noise.get('load_average_1m_before'):.2f} "
                   "before); latencies and ratios are not representative, re-run on a quiet machine")
    elif other is None and (load := noise.get("load_average_1m_before")) is not None \
            and load > 0.5 * (noise.get("logical_cpus") or 1):
        out.append(f"machine busy: 1-min load average {load:.2f} on {noise.get('logical_cpus')} CPUs before the "
                   "runs; latencies and ratios may not be representative")
    wide = {k: v for k, v in (noise.get("spread") or {}).items() if v is not None and v > WIDE_SPREAD}
    if wide:
        out.append("wide run-to-run spread (interquartile range / median): "
                   + ", ".join(f"{k} {100 * v:.0f} %" for k, v in wide.items())
                   + f" (above {100 * WIDE_SPREAD:.0f} %); the machine's speed changed during the runs")
    return out
