"""The accuracy-versus-latency picture: one point per backend, so the cost of each quantization
step (points of mAP, or agreement without GT) sits next to what it buys (milliseconds).

Drawn with matplotlib's Agg canvas directly, so the caller's pyplot backend is never touched.
"""

from __future__ import annotations

from pathlib import Path

from hoi_edge.atomic import atomic_output
from hoi_edge.validate.report import ValidationReport


def accuracy_axis(report: ValidationReport) -> tuple[str, list[float | None]]:
    """(axis label, value per backend): mAP Full with GT, else top-k agreement in percent."""
    if report.has_groundtruth:
        return "mAP Full (%)", [b.accuracy.full if b.accuracy else None for b in report.backends]
    k = report.settings.get("top_k", 10)
    return (f"Top-{k} agreement with the reference (%)",
            [100.0 if b.spec.is_reference else (100.0 * b.agreement.topk_overlap if b.agreement else None)
             for b in report.backends])


def plot_accuracy_latency(report: ValidationReport, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ylabel, values = accuracy_axis(report)
    fig = Figure(figsize=(7.5, 5.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = [b.latency.median_ms for b in report.backends]
    placed: list[tuple[float, float]] = []
    log_x = bool(xs) and max(xs) > 10 * max(min(xs), 1e-9)
    known = [v for v in values if v is not None]
    y_span = (max(known) - min(known)) if known else 1.0
    for b, x, y in zip(report.backends, xs, values):
        if y is None:
            continue
        color = "black" if b.spec.is_reference else ("tab:green" if b.passed else "tab:red")
        ax.scatter([x], [y], s=90 if b.spec.is_reference else 60, marker="*" if b.spec.is_reference else "o",
                   color=color, zorder=3)
        # labels of nearby points are stacked downwards instead of printed over each other
        near = sum(_close(x, y, px, py, xs, y_span, log_x) for px, py in placed)
        placed.append((x, y))
        ax.annotate(b.label, (x, y), textcoords="offset points", xytext=(6, 6 - 11 * near), fontsize=8)
    th = report.thresholds
    ref_y = values[0]
    if report.has_groundtruth and th.max_map_drop is not None and ref_y is not None:
        ax.axhline(ref_y - th.max_map_drop, color="tab:red", linestyle="--", linewidth=1,
                   label=f"reference − {th.max_map_drop:g} points")
    elif th.min_agreement is not None and not report.has_groundtruth:
        ax.axhline(100.0 * th.min_agreement, color="tab:red", linestyle="--", linewidth=1, label="min agreement")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(f"Median latency per image (ms, {report.settings.get('threads')} threads)")
    ax.set_ylabel(ylabel)
    verdict = "passed" if report.passed else "FAILED"
    ax.set_title(f"{Path(str(report.dataset['source'])).name}: {report.dataset['num_images']} images — {verdict}",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    ax.margins(x=0.15, y=0.15)
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _close(x: float, y: float, px: float, py: float, xs: list[float], y_span: float, log_x: bool) -> bool:
    import math

    if log_x:
        dx = abs(math.log10(max(x, 1e-9)) - math.log10(max(px, 1e-9))) / max(
            math.log10(max(xs) / max(min(xs), 1e-9)), 1e-9)
    else:
        dx = abs(x - px) / max(max(xs) - min(xs), 1e-9)
    return dx < 0.2 and abs(y - py) <= 0.05 * max(y_span, 1e-9)
