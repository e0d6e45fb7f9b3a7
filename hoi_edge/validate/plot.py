"""The accuracy-versus-latency picture: one point per backend, so the cost of each quantization
step (points of mAP, or agreement without GT) sits next to what it buys (milliseconds).

Drawn with matplotlib's Agg canvas directly, so the caller's pyplot backend is never touched.
"""

from __future__ import annotations

from pathlib import Path

from hoi_edge.core.atomic import atomic_output
from hoi_edge.validate.report import ValidationReport


def accuracy_axis(report: ValidationReport) -> tuple[str, list[float | None]]:
    """(axis label, value per backend): mAP Full with GT, else top-k agreement in percent; ``None``
    where there is no value (n/a agreement, a backend that failed to run)."""
    if report.has_groundtruth:
        return "mAP Full (%)", [b.accuracy.full if b.accuracy else None for b in report.backends]
    k = report.settings.get("top_k", 10)
    values = []
    for b in report.backends:
        if b.spec.is_reference:
            values.append(100.0)
        elif b.agreement is not None and b.agreement.topk_overlap is not None:
            values.append(100.0 * b.agreement.topk_overlap)
        else:
            values.append(None)
    return f"Top-{k} agreement with the reference (%)", values


# label positions tried around a point, in points (first that overlaps nothing wins)
_OFFSETS = [(6, 6), (6, -14), (-6, 6), (-6, -14), (6, 20), (6, -28), (-6, 20), (-6, -28), (6, 34), (6, -42)]


def plot_accuracy_latency(report: ValidationReport, path: str | Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ylabel, values = accuracy_axis(report)
    fig = Figure(figsize=(7.5, 5.0), dpi=120)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = [(b, b.latency.median_ms, y) for b, y in zip(report.backends, values)
              if y is not None and b.latency is not None]
    xs = [x for _, x, _ in points]
    log_x = bool(xs) and max(xs) > 10 * max(min(xs), 1e-9)
    for b, x, y in points:
        color = "black" if b.spec.is_reference else ("tab:green" if b.passed else "tab:red")
        ax.scatter([x], [y], s=90 if b.spec.is_reference else 60, marker="*" if b.spec.is_reference else "o",
                   color=color, zorder=3)
    th = report.thresholds
    ref_y = values[0]
    if report.has_groundtruth and th.max_map_drop is not None and ref_y is not None:
        ax.axhline(max(ref_y - th.max_map_drop, 0.0), color="tab:red", linestyle="--", linewidth=1,
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
    ax.margins(x=0.15)
    _percent_limits(ax, [y for _, _, y in points])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    missing = [b.label for b, y in zip(report.backends, values) if y is None or b.latency is None]
    if missing:
        fig.text(0.01, 0.01, "not plotted (n/a or failed): " + ", ".join(missing), fontsize=7, color="dimgray")
    fig.tight_layout()
    renderer = canvas.get_renderer()
    legend = ax.get_legend()
    place_labels(ax, renderer, [(b.label, x, y) for b, x, y in points],
                 avoid=[legend.get_window_extent(renderer)] if legend is not None else [])
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _percent_limits(ax, values: list[float]) -> None:
    """mAP and agreement are percentages: the axis stays within 0..100 (never negative), and spans at
    least one point, so equal values (all 0 with a random model) do not make a 0.00-0.06 axis."""
    if not values:
        ax.set_ylim(0.0, 100.0)
        return
    lo, hi = min(values), max(values)
    pad = max(hi - lo, 1.0) * 0.3
    bottom, top = max(lo - pad, 0.0), min(hi + pad, 100.0)
    if top - bottom < 1.0:
        bottom, top = (bottom, bottom + 1.0) if bottom + 1.0 <= 100.0 else (99.0, 100.0)
    ax.set_ylim(bottom, top)


def place_labels(ax, renderer, items: list[tuple[str, float, float]], avoid: list | None = None) -> list:
    """Annotate each point at the first offset whose text box stays inside the axes and overlaps no
    label placed before it, no marker and nothing in ``avoid`` (the legend): labels of nearby points
    go above, below or beside each other instead of on top of each other."""
    axes_box = ax.get_window_extent(renderer)
    markers = [ax.transData.transform((x, y)) for _, x, y in items]
    placed, texts = list(avoid or []), []
    for label, x, y in items:
        text = None
        for dx, dy in _OFFSETS:
            if text is not None:
                text.remove()
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8,
                               ha="left" if dx >= 0 else "right")
            box = text.get_window_extent(renderer).expanded(1.02, 1.1)
            inside = (box.x0 >= axes_box.x0 and box.x1 <= axes_box.x1 and box.y0 >= axes_box.y0
                      and box.y1 <= axes_box.y1)
            hits_marker = any(box.contains(mx, my) for mx, my in markers)
            if inside and not hits_marker and not any(box.overlaps(other) for other in placed):
                break
        placed.append(text.get_window_extent(renderer))
        texts.append(text)
    return texts
