"""Latency statistics from timed runs: median and p90 end to end and per pipeline stage.

Median and p90 rather than mean: one slow run (page faults, a CPU frequency change) should
not move the headline number, but a user does need to see the tail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from hoi_edge.pipeline.detector import STAGES


@dataclass(frozen=True)
class StageStats:
    median_ms: float
    p90_ms: float
    mean_ms: float


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds per image (batch 1, sequential); throughput = timed images / timed seconds."""

    runs: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    throughput_ips: float
    stages: dict[str, StageStats]

    @classmethod
    def from_seconds(cls, wall_s: np.ndarray, stage_s: Mapping[str, np.ndarray]) -> "LatencyStats":
        ms = np.asarray(wall_s, dtype=np.float64) * 1000.0
        if ms.size == 0:
            raise ValueError("no timed runs")
        return cls(
            runs=int(ms.size), median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)),
            mean_ms=float(ms.mean()), min_ms=float(ms.min()), throughput_ips=float(ms.size / (ms.sum() / 1000.0)),
            stages={s: _stage(stage_s[s]) for s in STAGES if s in stage_s},
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stage(seconds: np.ndarray) -> StageStats:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return StageStats(median_ms=float(np.median(ms)), p90_ms=float(np.percentile(ms, 90)), mean_ms=float(ms.mean()))


def speedup(reference: LatencyStats, other: LatencyStats) -> float:
    """How many times faster ``other`` is than ``reference`` (ratio of median latencies)."""
    return reference.median_ms / other.median_ms if other.median_ms > 0 else float("inf")


def describe_speedup(label: str, ratio: float, reference_label: str) -> str:
    """'openvino/int8: 2.70x faster than pytorch/fp32' (or 'slower', never a ratio below 1)."""
    if ratio >= 1.0:
        return f"{label}: {ratio:.2f}x faster than {reference_label}"
    return f"{label}: {1.0 / ratio:.2f}x slower than {reference_label}"


ARTIFACT_DEVICE = "cpu"      # where artifacts run without --device


def device_warning(reference_device: str, command: str = "validate") -> str | None:
    """Why the Speed-up column misleads when the reference ran on a GPU; ``None`` when CPU vs CPU."""
    if reference_device == ARTIFACT_DEVICE:
        return None
    return (f"the reference ran on {reference_device}, the artifacts on the CPU: Speed-up compares GPU with CPU "
            f"latency and is not like for like; run 'hoi-edge {command} --reference-device cpu' for CPU-vs-CPU "
            "ratios")
