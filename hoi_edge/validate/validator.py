"""``validate``: run the PyTorch reference and every artifact over the same images and report,
per artifact, what quantization cost (mAP drop, agreement) against what it bought (latency,
memory, size) — and fail when a threshold is exceeded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hoi_edge.errors import VocabularyError
from hoi_edge.eval import write_predictions
from hoi_edge.atomic import atomic_output
from hoi_edge.validate.accuracy import MapScores, check_vocabulary, eval_config, map_scores, resolve_split
from hoi_edge.validate.agreement import TOP_K, compare_predictions
from hoi_edge.validate.backends import artifact_spec, reference_spec, resolve_device, resolve_threads, unique_labels
from hoi_edge.validate.dataset import Dataset, load_dataset
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.latency import ARTIFACT_DEVICE, LatencyStats, device_warning, speedup
from hoi_edge.validate.measure import BackendRun, RunSettings, passes_for, run_backend
from hoi_edge.validate.report import BackendReport, Thresholds, ValidationReport, environment, slug
from hoi_edge.vocabulary import Vocabulary

REPORT_JSON, REPORT_MD, REPORT_PNG, PREDICTIONS_DIR = "report.json", "report.md", "accuracy_latency.png", "predictions"


@dataclass
class ValidateConfig:
    """Inputs of :func:`validate`; mirrors ``hoi-edge validate`` options."""

    reference: Path
    artifacts: Sequence[Path]
    data: Path
    images: Path | None = None
    split: str | None = None
    splits: Path | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    out: Path | None = None
    limit: int | None = None
    warmup: int = 3
    runs: int = 20            # at least this many timed runs: whole passes over the images are repeated
    threads: int | None = None
    device: str = "auto"
    top_k: int = TOP_K
    progress: bool = True
    isolate: bool = True      # one fresh process per backend: comparable peak memory (see memory.py)


def validate(cfg: ValidateConfig) -> ValidationReport:
    """Run everything, fill the report, and write it to ``cfg.out`` when given."""
    if not cfg.artifacts:
        raise ValidationError("nothing to validate: give at least one artifact folder (--artifacts DIR)")
    dataset = load_dataset(cfg.data, cfg.images, cfg.limit)
    device, threads = resolve_device(cfg.device), resolve_threads(cfg.threads)
    specs = unique_labels([reference_spec(cfg.reference, device), *(artifact_spec(a) for a in cfg.artifacts)])
    passes = passes_for(cfg.runs, len(dataset.paths))
    settings = RunSettings(warmup=cfg.warmup, threads=threads, progress=cfg.progress, isolate=cfg.isolate,
                           passes=passes)

    ref_run = run_backend(specs[0], dataset.paths, settings)
    vocab = Vocabulary.from_dict(ref_run.vocabulary or {}, source=str(cfg.reference))
    warnings = _check_artifacts(specs, ref_run)
    if (note := device_warning(device)) is not None:
        warnings.append(note)
    split = None
    if cfg.split is not None:
        if dataset.has_groundtruth:
            split = resolve_split(cfg.split, vocab, cfg.splits, cfg.data)
        else:
            warnings.append(f"--split {cfg.split} ignored: {cfg.data} has no ground truth")
    ecfg = None
    if dataset.groundtruth is not None:
        warnings += check_vocabulary(dataset.groundtruth, vocab)
        ecfg = eval_config(dataset.groundtruth, vocab, split)
    else:
        warnings.append("no ground truth: mAP is not measured and --max-map-drop is not checked; "
                        "agreement with the reference is the only accuracy signal")

    runs = [ref_run] + [run_backend(s, dataset.paths, settings) for s in specs[1:]]
    ref_latency = LatencyStats.from_seconds(ref_run.wall_s, ref_run.stage_s)
    ref_accuracy = _accuracy(ref_run, dataset, ecfg)
    reports = [_backend_report(run, ref_run, ref_latency, ref_accuracy, dataset, ecfg, cfg.top_k) for run in runs]
    for b in reports:
        if b.accuracy is not None and b.accuracy.full is None:
            warnings.append(f"{b.label}: mAP undefined (no GT pairs in the evaluated images)")
    for b in reports[1:]:
        b.failures = cfg.thresholds.check(b)
    report = ValidationReport(
        dataset={**dataset.describe(), "images_dir": str(cfg.images) if cfg.images else None},
        settings={"warmup": cfg.warmup, "runs": cfg.runs, "passes": passes, "timed_runs": passes * len(dataset.paths),
                  "threads": threads, "device": device, "reference_device": device,
                  "artifact_device": ARTIFACT_DEVICE, "top_k": cfg.top_k, "split": split.name if split else None,
                  "limit": cfg.limit, "isolated": cfg.isolate},
        thresholds=cfg.thresholds, reference=reports[0], artifacts=reports[1:], environment=environment(),
        warnings=warnings,
    )
    if cfg.out is not None:
        write_outputs(report, cfg.out, runs, dataset)
    return report


def _check_artifacts(specs, ref_run: BackendRun) -> list[str]:
    """Artifacts must score the reference's label space; another source checkpoint is only a warning
    (re-exported or fine-tuned checkpoints are a legitimate thing to compare)."""
    from hoi_edge.checkpoint import file_sha256

    ref_sha = file_sha256(specs[0].path)
    warnings = []
    for s in specs[1:]:
        if s.vocabulary_fingerprint != ref_run.vocabulary_fingerprint:
            raise VocabularyError(f"artifact {s.path} was baked for another vocabulary than the reference "
                                  f"{specs[0].path}; re-export it or re-bake it with 'hoi-edge bake'")
        if s.source_sha256 and s.source_sha256 != ref_sha:
            warnings.append(f"{s.label} ({s.path}) was exported from another checkpoint than {specs[0].path} "
                            f"(sha256 {s.source_sha256[:12]} vs {ref_sha[:12]})")
    return warnings


def _accuracy(run: BackendRun, dataset: Dataset, ecfg) -> MapScores | None:
    if ecfg is None or dataset.groundtruth is None or run.predictions is None:
        return None
    return map_scores(dataset.groundtruth, run.predictions, ecfg)


def _backend_report(run: BackendRun, ref: BackendRun, ref_latency: LatencyStats, ref_accuracy: MapScores | None,
                    dataset: Dataset, ecfg, top_k: int) -> BackendReport:
    latency = LatencyStats.from_seconds(run.wall_s, run.stage_s)
    if run is ref:
        return BackendReport(spec=run.spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                             latency=latency, memory=run.memory, accuracy=ref_accuracy, speedup=1.0)
    accuracy = _accuracy(run, dataset, ecfg)
    drop = accuracy.drop_from(ref_accuracy) if accuracy is not None and ref_accuracy is not None else None
    return BackendReport(spec=run.spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                         latency=latency, memory=run.memory, accuracy=accuracy, map_drop=drop,
                         agreement=compare_predictions(ref.predictions, run.predictions, dataset.names, k=top_k),
                         speedup=speedup(ref_latency, latency))


def write_outputs(report: ValidationReport, out: str | Path, runs: Sequence[BackendRun] = (),
                  dataset: Dataset | None = None) -> dict[str, Path]:
    """predictions/<backend>.jsonl (readable by ``hoi-edge eval``), report.json, report.md and
    accuracy_latency.png, each written to a temp file and renamed into ``out``."""
    from hoi_edge.validate.plot import plot_accuracy_latency

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if dataset is not None:
        for run in runs:
            if run.predictions is None:
                continue
            path = out / PREDICTIONS_DIR / f"{slug(run.spec.label)}.jsonl"
            path.parent.mkdir(exist_ok=True)
            try:
                write_predictions(path, run.predictions.to_image_detections(dataset.names))
            except ValueError as exc:   # non-finite scores from a broken artifact: the report still stands
                report.warnings.append(f"{run.spec.label}: predictions not written ({exc})")
                continue
            written[f"predictions:{run.spec.label}"] = path
    written.update(json=out / REPORT_JSON, markdown=out / REPORT_MD, plot=out / REPORT_PNG)
    with atomic_output(written["json"]) as tmp:
        tmp.write_text(report.to_json())
    with atomic_output(written["markdown"]) as tmp:
        tmp.write_text(report.to_markdown())
    plot_accuracy_latency(report, written["plot"])
    return written
