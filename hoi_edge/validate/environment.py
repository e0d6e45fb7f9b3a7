"""What the numbers were measured on (CPU, Python, package versions, machine load): they mean
little without it, and a busy machine makes latency ratios meaningless."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

from hoi_edge.core.cpu import cpu_info
from hoi_edge.targets_registry import runtime_packages

#: The model side, every registered target's runtime (:mod:`hoi_edge.targets_registry`), and the NumPy glue.
VERSIONED = ("hoi-edge", "torch", *runtime_packages(), "numpy", "opencv-python-headless")


def cpu_name() -> str:
    return cpu_info().name


def cpu_line(env: dict[str, Any]) -> str:
    """'Measured on AMD EPYC (2 logical CPUs; AVX-512 VNNI, AVX512-BF16).': the line every report prints beside
    its speed and agreement numbers (INT8 speed and arithmetic depend on the ISA, :mod:`hoi_edge.core.cpu`)."""
    return f"Measured on {env.get('cpu', 'an unknown CPU')} ({env.get('logical_cpus')} logical CPUs; " \
           f"{env.get('isa', 'ISA not recorded')})."


def load_average() -> float | None:
    """1-minute load average (runnable processes), ``None`` where the OS does not report it."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def package_versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return versions


def environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(), "isa": cpu_info().isa_label(),
            "logical_cpus": os.cpu_count(), "load_average_1m": load_average(), "versions": package_versions()}


def _proc_cpu_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _system_ticks() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat; None where unavailable."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, IndexError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """How much of the machine *other* processes used while ours were timed: all CPUs' busy time
    (/proc/stat) minus our own processes' CPU time (/proc/PID/stat), as a fraction of the capacity.
    Linux only (``None`` elsewhere); the 1-minute load average is recorded beside it."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = [os.getpid(), *pids]
        self.load_before = load_average()
        self._start = _system_ticks()
        self._ours = sum(_proc_cpu_ticks(p) for p in self.pids)

    def stop(self) -> dict[str, Any]:
        end, ours = _system_ticks(), sum(_proc_cpu_ticks(p) for p in self.pids)
        foreign = None
        if self._start is not None and end is not None and end[1] > self._start[1]:
            busy, total = end[0] - self._start[0], end[1] - self._start[1]
            foreign = max(0.0, (busy - (ours - self._ours)) / total)
        return {"other_processes_cpu": foreign, "load_average_1m_before": self.load_before,
                "load_average_1m_after": load_average(), "logical_cpus": os.cpu_count()}
