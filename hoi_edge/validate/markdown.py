"""The Markdown tables users read, for validation and benchmark reports.

Works on the report objects by attribute only (no import of :mod:`hoi_edge.validate.report`),
so the data module can offer ``to_markdown()`` without an import cycle."""

from __future__ import annotations

from typing import Any, Sequence

from hoi_edge.pipeline.detector import STAGES
from hoi_edge.validate.accuracy import METRIC_NAMES
from hoi_edge.validate.environment import cpu_line
from hoi_edge.validate.memory import MemoryStats

MEMORY_NOTE = ("Peak RSS: high-water mark (VmHWM) of a fresh process per backend over load + warm-up + timed runs; "
               "it includes Python, NumPy, OpenCV and that backend's runtime only (PyTorch for the reference and "
               "for ExecuTorch, whose Python runtime needs it; OpenVINO or ONNX Runtime alone for theirs). "
               "(+model): peak minus the RSS once those were imported, before the model was loaded: weights, "
               "compiled graphs and working buffers.")
GPU_NOTE = "GPU peak MB: torch.cuda.max_memory_allocated of the reference (tensors only, not the CUDA context)."
NA_NOTE = ("n/a: the reference found no triplet (agreement) or no instance (box AP) on any image, or the ground "
           "truth has no pair of a gated mAP column's classes, so there was nothing to compare with (a gated n/a "
           "fails).")
BOX_AP_NOTE = ("Box AP (H / O): COCO-style AP (%) of the backend's human / object instances before the pipeline's "
               "cut (score >= 0.01, NMS) against the reference's kept instances as pseudo ground truth, at IoU 0.5 "
               "(AP50) and averaged over IoU 0.50:0.95; Recall: share (%) of the reference's kept instances the "
               "backend keeps at the pipeline's threshold. Shown for artifacts with a real detector.")


def _f(v: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if v is None else f"{v:.{digits}f}{suffix}"


def fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def fmt_memory(m: MemoryStats | None) -> str:
    """'1137 (+183)': process peak, and what the model + runtime added over the post-import baseline."""
    if m is None or m.peak_rss_mb is None:
        return "—"
    return fmt_mb(m.peak_rss_mb) + (f" (+{m.model_rss_mb:.0f})" if m.model_rss_mb is not None else "")


def has_gpu_memory(backends: Sequence[Any]) -> bool:
    """Show a GPU column only when some backend ran on a GPU."""
    return any(b.memory is not None and b.memory.gpu_peak_mb is not None for b in backends)


def speedup_header(reference_device: str | None) -> str:
    """'Speed-up', or 'Speed-up vs cuda' when the reference's GPU latency is the denominator."""
    return "Speed-up" if reference_device in (None, "cpu") else f"Speed-up vs {reference_device}"


def reference_name(label: str, device: str | None) -> str:
    return f"{label} (reference{'' if device in (None, 'cpu') else ', ' + device})"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    align = ["---" if i == 0 else "--:" for i in range(len(head))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [head, align, *rows])


def fmt_agreement(g: Any) -> list[str]:
    """Top-k overlap, score MAE, box IoU; 'n/a' when the reference found nothing to agree with."""
    if g is None:
        return ["—"] * 3
    if g.topk_overlap is None:
        return ["n/a", "—", "—"]
    return [_f(g.topk_overlap, 3), _f(g.score_mae, 4), _f(g.box_iou, 3)]


def fmt_box_ap(box_ap: dict[str, Any] | None, key: str) -> str:
    """'91.2 / 85.0' (persons / objects, percent) for ``key`` ('ap50' or 'ap'); 'n/a' per group without
    reference boxes."""
    if box_ap is None:
        return "—"
    box_ap = box_ap.get("box_ap", box_ap)
    cells = []
    for group in ("persons", "objects"):
        v = box_ap.get(group)
        cells.append("n/a" if v is None or v.get(key) is None else f"{v[key]:.1f}")
    return " / ".join(cells)


def fmt_recall(box_ap: dict[str, Any] | None) -> str:
    """Recall (percent) at the pipeline's threshold, or '—'."""
    if box_ap is None or box_ap.get("recall") is None:
        return "—"
    return f"{box_ap['recall']:.1f}"


def _has_box_ap(backends: Sequence[Any]) -> bool:
    return any(b.box_ap is not None for b in backends)


def _status(b: Any) -> str:
    if b.spec.is_reference:
        return "reference"
    if b.error is not None:
        return "**BROKEN**"
    return "pass" if b.passed else "**FAIL**"


def execution_lines(backends: Sequence[Any]) -> list[str]:
    """'Ran on (as the runtime reports it): openvino/int8: detector CPU, ...' — what each artifact unit
    actually executed on (OpenVINO EXECUTION_DEVICES, ONNX Runtime session providers); empty when unknown."""
    out = []
    for b in backends:
        info = getattr(b, "execution", None)
        if not info:
            continue
        units = []
        for unit, e in info.items():
            ran = e.get("executed")
            text = "+".join(str(x).replace("ExecutionProvider", "") for x in ran) if ran else f"{e.get('requested')}"
            units.append(f"{unit} {text}" + (f" ({e['fell_back']})" if e.get("fell_back") else ""))
        out.append(f"- {b.label}: {', '.join(units)}")
    return (["", "Ran on (as each runtime reports it):", *out]) if out else []


def render_markdown(r: Any) -> str:
    """A :class:`~hoi_edge.validate.report.ValidationReport` as the Markdown users read."""
    s, k = r.settings, r.settings.get("top_k", 10)
    zero_shot = s.get("split") is not None and r.has_groundtruth
    head = ["Model", "Size (MB)"]
    if r.has_groundtruth:
        head += ["mAP Full", "Rare", "Non-rare"] + (["Unseen", "Seen"] if zero_shot else [])
        gated = r.thresholds.gated_columns(r.reference.accuracy) or ("full",)     # a Δ column per gated mAP
        head += [f"Δ {'mAP ' if m == 'full' else ''}{METRIC_NAMES[m]}" for m in gated]
    gpu, box = has_gpu_memory(r.backends), _has_box_ap(r.backends)
    head += [f"Top-{k} agree", "Score MAE", "Box IoU"]
    head += ["Box AP50 (H / O)", "Box AP (H / O)", "Recall"] if box else []
    head += ["Median (ms)", "p90 (ms)", "img/s", "Peak RSS MB (+model)"]
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
            row += ["—" if ref or b.map_drop is None else "n/a" if d.get(m) is None else _f(d[m], suffix=" pt")
                    for m in gated]
        row += fmt_agreement(b.agreement)
        row += [fmt_box_ap(b.box_ap, "ap50"), fmt_box_ap(b.box_ap, "ap"), fmt_recall(b.box_ap)] if box else []
        lat = b.latency
        row += ([f"{lat.median_ms:.1f}", f"{lat.p90_ms:.1f}", f"{lat.throughput_ips:.2f}"] if lat else ["—"] * 3)
        row += [fmt_memory(b.memory)] + ([fmt_mb(b.memory.gpu_peak_mb if b.memory else None)] if gpu else [])
        row += [_f(b.speedup, 2, "x"), _status(b)]
        rows.append(row)
    verdict = "PASSED" if r.passed else "FAILED"
    d = r.dataset
    data = (f"{d['source']} ({d['num_images']} images, "
            + ("ground truth" if r.has_groundtruth else "no labels: agreement only") + ")")
    limits = []
    if r.thresholds.max_map_drop is not None:
        columns = ", ".join(METRIC_NAMES[m] for m in r.thresholds.gated_columns(r.reference.accuracy))
        limits.append(f"max mAP drop {r.thresholds.max_map_drop:.2f} points"
                      + (f" ({columns})" if columns else " — not checked without GT"))
    if r.thresholds.min_agreement is not None:
        limits.append(f"min top-{k} agreement {r.thresholds.min_agreement:.3f}")
    runs = r.reference.latency.runs if r.reference.latency else 0
    working = [b for b in r.backends if b.latency is not None]
    lines = [
        f"### hoi-edge validation: {verdict}", "",
        f"Data: {data}. Reference on {r.reference.spec.device}, artifacts on {s.get('artifact_device', 'cpu')}; "
        f"{s.get('threads')} threads per backend; {s.get('warmup')} warm-up + {runs} timed runs "
        f"per backend ({_passes(s.get('passes', 1))} over the images); split: {s.get('split') or '—'}.",
        f"Thresholds: {'; '.join(limits) or 'none'}.", cpu_line(r.environment), "",
        md_table(head, rows), "",
        "Median latency per stage (ms):", "",
        md_table(["Model", *STAGES, "total"],
                 [[b.label, *(f"{b.latency.stages[st].median_ms:.1f}" if st in b.latency.stages else "—"
                              for st in STAGES), f"{b.latency.median_ms:.1f}"] for b in working]),
    ]
    lines += ["", MEMORY_NOTE] + ([GPU_NOTE] if gpu else []) + ([BOX_AP_NOTE] if box else [])
    lines += execution_lines(r.backends)
    if any("n/a" in cell for row in rows for cell in row):          # box AP cells read "n/a / 85.0"
        lines.append(NA_NOTE)
    if r.failures:
        lines += ["", "Failures:", *[f"- {f}" for f in r.failures]]
    if r.warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in r.warnings]]
    return "\n".join(lines) + "\n"


def _passes(n: int) -> str:
    return "1 pass" if n == 1 else f"{n} passes"
