"""Validation results as data (dataclasses -> JSON) and the pass/fail rules (:class:`Thresholds`).

Rendering lives in :mod:`hoi_edge.validate.markdown`, the machine description in
:mod:`hoi_edge.validate.environment`.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from hoi_edge.validate.accuracy import METRIC_NAMES, MapScores
from hoi_edge.validate.agreement import AgreementStats
from hoi_edge.validate.backends import BackendSpec
from hoi_edge.validate.latency import LatencyStats
from hoi_edge.validate.markdown import render_markdown
from hoi_edge.validate.memory import MemoryStats

FORMAT = "hoi-edge/validation"
FORMAT_VERSION = 2        # 2: agreement may be null (n/a), backends may carry an error, run-level failures
_EPS = 1e-9      # float noise must not fail a drop exactly at the threshold


@dataclass(frozen=True)
class Thresholds:
    """``max_map_drop`` (mAP points) gates every mAP column that says something on its own (see
    :meth:`gated_columns`): Full; Rare when the ground truth has rare classes; Unseen and Seen when a
    zero-shot split is evaluated. A gated column that is undefined (n/a) fails: nothing was compared. It
    needs ground truth. ``min_agreement`` (0-1) gates the top-k overlap and always applies; an
    agreement that is n/a (the reference found nothing) fails it, since nothing was compared.
    ``allow_empty_reference``: a reference that found no triplet on any image does not fail the run.
    ``allow_checkpoint_mismatch``: an artifact exported from another checkpoint is only a warning."""

    max_map_drop: float | None = 1.0
    min_agreement: float | None = None
    allow_empty_reference: bool = False
    allow_checkpoint_mismatch: bool = False

    @staticmethod
    def gated_columns(accuracy: MapScores | None) -> tuple[str, ...]:
        """The mAP metrics ``max_map_drop`` gates for a backend scored ``accuracy`` (none without GT).

        Full alone would let an INT8 model that keeps the frequent classes and loses the unseen ones (the
        reason a zero-shot model exists) pass, so Unseen and Seen are gated with a split, and Rare wherever
        the ground truth has rare classes (a Rare mAP is defined). Non-rare is most of Full and not gated."""
        if accuracy is None:
            return ()
        rare = ("rare",) if accuracy.rare is not None else ()
        zero_shot = ("unseen", "seen") if accuracy.split is not None else ()
        return ("full", *rare, *zero_shot)

    def check(self, b: "BackendReport") -> list[str]:
        out = []
        if self.max_map_drop is not None and b.map_drop is not None:
            for metric in self.gated_columns(b.accuracy):
                name, drop = METRIC_NAMES[metric], b.map_drop.get(metric)
                if drop is None:
                    out.append(f"{b.label} ({b.spec.path}): mAP {name} is n/a (the ground truth has no pair of "
                               f"its classes in the evaluated images), so --max-map-drop {self.max_map_drop:.2f} "
                               "cannot be checked")
                elif drop > self.max_map_drop + _EPS:
                    mine = getattr(b.accuracy, metric)
                    out.append(f"{b.label} ({b.spec.path}): mAP {name} drop {drop:.2f} > {self.max_map_drop:.2f} "
                               f"points (reference {mine + drop:.2f}, artifact {mine:.2f})")
        if self.min_agreement is not None and b.agreement is not None:
            overlap = b.agreement.topk_overlap
            if overlap is None:
                if not self.allow_empty_reference:
                    out.append(f"{b.label} ({b.spec.path}): top-{b.agreement.top_k} agreement is n/a (the reference "
                               f"found no triplet on any image), so --min-agreement {self.min_agreement:.3f} "
                               "cannot be checked")
            elif overlap < self.min_agreement - _EPS:
                out.append(f"{b.label} ({b.spec.path}): top-{b.agreement.top_k} agreement "
                           f"{overlap:.3f} < {self.min_agreement:.3f}")
        return out

    def check_reference(self, reference: "BackendReport", num_images: int) -> list[str]:
        """Run-level rule: a reference that found nothing leaves nothing to compare the artifacts with."""
        if self.allow_empty_reference or reference.triplets is None or reference.triplets > 0:
            return []
        return [f"the reference {reference.spec.path} found no HOI triplet on any of the {num_images} images, so "
                "agreement and mAP drop compare nothing and cannot pass (a random-init model usually finds "
                "nothing); validate a trained checkpoint, or pass --allow-empty-reference to accept this"]


@dataclass
class BackendReport:
    """Everything measured for one backend; accuracy fields are ``None`` where they do not apply
    (no GT: no mAP; the reference: no drop and no agreement with itself). ``error`` is set (and
    latency/memory are ``None``) when the backend could not be loaded or run."""

    spec: BackendSpec
    backend: str
    threads: int | None
    load_s: float | None
    latency: LatencyStats | None
    memory: MemoryStats | None
    accuracy: MapScores | None = None
    map_drop: dict[str, float | None] | None = None
    agreement: AgreementStats | None = None
    box_ap: dict[str, Any] | None = None
    speedup: float | None = None
    triplets: int | None = None          # detections kept over the first pass (None: not recorded)
    failures: list[str] = field(default_factory=list)
    error: str | None = None
    execution: dict[str, Any] | None = None   # per unit: device asked for and what ran it (artifacts)

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def broken(self) -> bool:
        return self.error is not None

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, **self.spec.to_dict(), "size_mb": self.spec.size_bytes / 2**20,
            "backend": self.backend, "threads": self.threads, "load_s": self.load_s,
            "latency": self.latency.to_dict() if self.latency else None,
            "memory": self.memory.to_dict() if self.memory else None,
            "accuracy": self.accuracy.to_dict() if self.accuracy else None, "map_drop": self.map_drop,
            "agreement": self.agreement.to_dict() if self.agreement else None, "box_ap": self.box_ap,
            "speedup": self.speedup, "triplets": self.triplets, "passed": self.passed,
            "failures": list(self.failures), "error": self.error, "execution": self.execution,
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
    run_failures: list[str] = field(default_factory=list)
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def backends(self) -> list[BackendReport]:
        return [self.reference, *self.artifacts]

    @property
    def has_groundtruth(self) -> bool:
        return bool(self.dataset.get("has_groundtruth"))

    @property
    def failures(self) -> list[str]:
        return list(self.run_failures) + [f for b in self.artifacts for f in b.failures] + [
            f"{b.label} ({b.spec.path}) failed: {b.error}" for b in self.artifacts if b.error is not None]

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
