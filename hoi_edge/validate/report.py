"""Validation results as data (dataclasses -> JSON) and as the Markdown table users read,
plus the pass/fail rules (:class:`Thresholds`)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import json
import platform
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hoi_edge.pipeline import STAGES
from hoi_edge.validate.accuracy import MapScores
from hoi_edge.validate.agreement import AgreementStats
from hoi_edge.validate.backends import BackendSpec
from hoi_edge.validate.latency import LatencyStats
from hoi_edge.validate.memory import MemoryStats

FORMAT = "hoi-edge/validation"
FORMAT_VERSION = 1
_EPS = 1e-9      # float noise must not fail a drop exactly at the threshold
MEMORY_NOTE = ("Peak RSS: high-water mark (VmHWM) of a fresh process per backend over load + warm-up + timed runs; "
               "it includes Python, NumPy, OpenCV and that backend's runtime only (PyTorch for the reference and "
               "for ExecuTorch, whose Python runtime needs it; OpenVINO or ONNX Runtime alone for theirs). "
               "(+model): peak minus the RSS once those were imported, before the model was loaded: weights, "
               "compiled graphs and working buffers.")
GPU_NOTE = "GPU peak MB: torch.cuda.max_memory_allocated of the reference (tensors only, not the CUDA context)."
_VERSIONED = ("hoi-edge", "torch", "openvino", "onnxruntime", "executorch", "numpy", "opencv-python-headless")


@dataclass(frozen=True)
class Thresholds:
    """``max_map_drop`` (mAP points) gates mAP Full, and Unseen when a zero-shot split is evaluated;
    it needs ground truth. ``min_agreement`` (0-1) gates the top-k overlap and always applies."""

    max_map_drop: float | None = 1.0
    min_agreement: float | None = None

    def check(self, b: "BackendReport") -> list[str]:
        out = []
        if self.max_map_drop is not None and b.map_drop is not None:
            for metric in ("full", "unseen"):
                drop = b.map_drop.get(metric)
                if drop is not None and drop > self.max_map_drop + _EPS:
                    out.append(f"{b.label} ({b.spec.path}): mAP {metric.capitalize()} drop "
                               f"{drop:.2f} > {self.max_map_drop:.2f} points")
        if self.min_agreement is not None and b.agreement is not None:
            if b.agreement.topk_overlap < self.min_agreement - _EPS:
                out.append(f"{b.label} ({b.spec.path}): top-{b.agreement.top_k} agreement "
                           f"{b.agreement.topk_overlap:.3f} < {self.min_agreement:.3f}")
        return out


@dataclass
class BackendReport:
    """Everything measured for one backend; accuracy fields are ``None`` where they do not apply
    (no GT: no mAP; the reference: no drop and no agreement with itself)."""

    spec: BackendSpec
    backend: str
    threads: int | None
    load_s: float
    latency: LatencyStats
    memory: MemoryStats
    accuracy: MapScores | None = None
    map_drop: dict[str, float | None] | None = None
    agreement: AgreementStats | None = None
    speedup: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, **self.spec.to_dict(), "size_mb": self.spec.size_bytes / 2**20,
            "backend": self.backend, "threads": self.threads, "load_s": self.load_s,
            "latency": self.latency.to_dict(), "memory": self.memory.to_dict(),
            "accuracy": self.accuracy.to_dict() if self.accuracy else None, "map_drop": self.map_drop,
            "agreement": self.agreement.to_dict() if self.agreement else None, "speedup": self.speedup,
            "passed": self.passed, "failures": list(self.failures),
        }


@dataclass
class ValidationReport:
    dataset: dict[str, Any]
    settings: dict[str, Any]
    thresholds: Thresholds
    reference: BackendReport
    artifacts: list[BackendReport]
    environment: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def backends(self) -> list[BackendReport]:
        return [self.reference, *self.artifacts]

    @property
    def has_groundtruth(self) -> bool:
        return bool(self.dataset.get("has_groundtruth"))

    @property
    def failures(self) -> list[str]:
        return [f for b in self.artifacts for f in b.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "created": self.created, "passed": self.passed,
            "failures": self.failures, "warnings": list(self.warnings), "dataset": self.dataset,
            "settings": self.settings, "thresholds": asdict(self.thresholds), "environment": self.environment,
            "reference": self.reference.to_dict(), "artifacts": [a.to_dict() for a in self.artifacts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        return render_markdown(self)


# --- Markdown -----------------------------------------------------------------------------------

def _f(v: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if v is None else f"{v:.{digits}f}{suffix}"


def fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def fmt_memory(m: MemoryStats) -> str:
    """'1137 (+183)': process peak, and what the model + runtime added over the post-import baseline."""
    if m.peak_rss_mb is None:
        return "—"
    return fmt_mb(m.peak_rss_mb) + (f" (+{m.model_rss_mb:.0f})" if m.model_rss_mb is not None else "")


def has_gpu_memory(backends: Sequence["BackendReport"]) -> bool:
    """Show a GPU column only when some backend ran on a GPU."""
    return any(b.memory.gpu_peak_mb is not None for b in backends)


def speedup_header(reference_device: str | None) -> str:
    """'Speed-up', or 'Speed-up vs cuda' when the reference's GPU latency is the denominator."""
    return "Speed-up" if reference_device in (None, "cpu") else f"Speed-up vs {reference_device}"


def reference_name(label: str, device: str | None) -> str:
    return f"{label} (reference{'' if device in (None, 'cpu') else ', ' + device})"


def render_markdown(r: ValidationReport) -> str:
    s, k = r.settings, r.settings.get("top_k", 10)
    zero_shot = s.get("split") is not None and r.has_groundtruth
    head = ["Model", "Size (MB)"]
    if r.has_groundtruth:
        head += ["mAP Full", "Rare", "Non-rare"] + (["Unseen", "Seen"] if zero_shot else [])
        head += ["Δ mAP Full"] + (["Δ Unseen"] if zero_shot else [])
    gpu = has_gpu_memory(r.backends)
    head += [f"Top-{k} agree", "Score MAE", "Box IoU", "Median (ms)", "p90 (ms)", "img/s", "Peak RSS MB (+model)"]
    head += (["GPU peak MB"] if gpu else []) + [speedup_header(r.reference.spec.device), "Status"]
    rows = []
    for b in r.backends:
        ref = b.spec.is_reference
        row = [reference_name(b.label, b.spec.device) if ref else b.label, f"{b.spec.size_bytes / 2**20:.1f}"]
        if r.has_groundtruth:
            a = b.accuracy
            row += [_f(a.full if a else None), _f(a.rare if a else None), _f(a.non_rare if a else None)]
            if zero_shot:
                row += [_f(a.unseen if a else None), _f(a.seen if a else None)]
            d = b.map_drop or {}
            row += ["—" if ref else _f(d.get("full"), suffix=" pt")]
            if zero_shot:
                row += ["—" if ref else _f(d.get("unseen"), suffix=" pt")]
        g = b.agreement
        row += [_f(g.topk_overlap, 3), _f(g.score_mae, 4), _f(g.box_iou, 3)] if g else ["—"] * 3
        lat = b.latency
        row += [f"{lat.median_ms:.1f}", f"{lat.p90_ms:.1f}", f"{lat.throughput_ips:.2f}", fmt_memory(b.memory)]
        row += ([fmt_mb(b.memory.gpu_peak_mb)] if gpu else [])
        row += [_f(b.speedup, 2, "x"), "reference" if ref else ("pass" if b.passed else "**FAIL**")]
        rows.append(row)
    verdict = "PASSED" if r.passed else "FAILED"
    d = r.dataset
    data = (f"{d['source']} ({d['num_images']} images, "
            + ("ground truth" if r.has_groundtruth else "no labels: agreement only") + ")")
    limits = []
    if r.thresholds.max_map_drop is not None:
        limits.append(f"max mAP drop {r.thresholds.max_map_drop:.2f} points (Full{', Unseen' if zero_shot else ''})"
                      + ("" if r.has_groundtruth else " — not checked without GT"))
    if r.thresholds.min_agreement is not None:
        limits.append(f"min top-{k} agreement {r.thresholds.min_agreement:.3f}")
    lines = [
        f"### hoi-edge validation: {verdict}", "",
        f"Data: {data}. Reference on {r.reference.spec.device}, artifacts on {s.get('artifact_device', 'cpu')}; "
        f"{s.get('threads')} threads per backend; {s.get('warmup')} warm-up + {r.reference.latency.runs} timed runs "
        f"per backend ({_passes(s.get('passes', 1))} over the images); split: {s.get('split') or '—'}.",
        f"Thresholds: {'; '.join(limits) or 'none'}.", "",
        md_table(head, rows), "",
        "Median latency per stage (ms):", "",
        md_table(["Model", *STAGES, "total"],
               [[b.label, *(f"{b.latency.stages[st].median_ms:.1f}" if st in b.latency.stages else "—"
                            for st in STAGES), f"{b.latency.median_ms:.1f}"] for b in r.backends]),
    ]
    lines += ["", MEMORY_NOTE] + ([GPU_NOTE] if gpu else [])
    if r.failures:
        lines += ["", "Failures:", *[f"- {f}" for f in r.failures]]
    if r.warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in r.warnings]]
    return "\n".join(lines) + "\n"


def _passes(n: int) -> str:
    return "1 pass" if n == 1 else f"{n} passes"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---" if i == 0 else "--:" for i in range(len(head))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [head, align, *rows])


# --- environment and files ----------------------------------------------------------------------

def environment() -> dict[str, Any]:
    """What the numbers were measured on: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    import os

    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "versions": versions}


def slug(label: str) -> str:
    """A file-name-safe form of a backend label ('openvino/int8 [x]' -> 'openvino-int8-x')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")
