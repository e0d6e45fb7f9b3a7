"""Peak resident memory of one backend, measured so that backends can be compared.

Each backend runs in its own fresh Python process (see :mod:`hoi_edge.validate.measure`), and
that process reports its RSS high-water mark (Linux ``VmHWM``) after load + warm-up + timed
runs. ``ru_maxrss`` is not used on Linux: it survives ``exec`` and would report the parent's
size for a child started from a large process. The worker imports only its backend's runtime
(no PyTorch for OpenVINO / ONNX Runtime) and does so before ``baseline``, the RSS just before the
model is loaded: ``peak`` is the backend's whole footprint, ``peak - baseline`` what the model
(weights, compiled graphs, working buffers) adds on top of Python and the runtime library.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MB = 2**20
_STATUS = Path("/proc/self/status")


@dataclass(frozen=True)
class MemoryStats:
    """MiB; ``None`` where not measured (in-process runs, or no way to read it on this OS)."""

    peak_rss_mb: float | None
    baseline_rss_mb: float | None
    gpu_peak_mb: float | None = None
    method: str = ""

    @property
    def model_rss_mb(self) -> float | None:
        if self.peak_rss_mb is None or self.baseline_rss_mb is None:
            return None
        return self.peak_rss_mb - self.baseline_rss_mb

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_rss_mb": self.model_rss_mb}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MemoryStats":
        return cls(**{k: data.get(k) for k in ("peak_rss_mb", "baseline_rss_mb", "gpu_peak_mb", "method")})

    @classmethod
    def not_measured(cls, why: str) -> "MemoryStats":
        return cls(None, None, None, f"not measured ({why})")


def _status_kb(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024
    try:
        import psutil

        return psutil.Process().memory_info().rss / MB
    except Exception:  # psutil missing or unsupported platform
        return None


def peak_rss_mb() -> tuple[float | None, str]:
    """(peak MiB, how it was measured)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024, "VmHWM of a fresh process per backend (load + warm-up + timed runs)"
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # macOS reports bytes, the other Unixes KiB
        return (peak / MB if sys.platform == "darwin" else peak / 1024), "ru_maxrss of a fresh process per backend"
    except (ImportError, OSError):
        return None, "not measured (no VmHWM or getrusage on this OS)"
