"""``validate``: run the PyTorch reference and every artifact over the same images and report,
per artifact, what quantization cost (mAP drop, agreement) against what it bought (latency,
memory, size) — and fail when a threshold is exceeded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from hoi_edge.core.atomic import atomic_output, check_writable
from hoi_edge.core.errors import HOIEdgeError, VocabularyError
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.eval import write_predictions
from hoi_edge.eval.splits import resolve_split
from hoi_edge.validate.accuracy import MapScores, check_vocabulary, eval_config, map_scores
from hoi_edge.validate.agreement import TOP_K, compare_predictions
from hoi_edge.validate.backends import (
    BackendSpec,
    artifact_spec,
    broken_spec,
    reference_spec,
    resolve_device,
    resolve_threads,
    slug,
    unique_labels,
)
from hoi_edge.validate.dataset import Dataset, load_dataset
from hoi_edge.validate.environment import environment
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.latency import ARTIFACT_DEVICE, LatencyStats, device_warning, speedup
from hoi_edge.validate.measure import BackendRun, RunSettings, passes_for
from hoi_edge.validate.report import BackendReport, Thresholds, ValidationReport
from hoi_edge.validate.worker import run_backend

REPORT_JSON, REPORT_MD, REPORT_PNG, PREDICTIONS_DIR = "report.json", "report.md", "accuracy_latency.png", "predictions"


@dataclass
class ValidateConfig:
    """Inputs of :func:`validate`; mirrors ``hoi-edge validate`` options. ``reference`` may be the
    word 'default' (the default model, as in ``detect`` and ``export``)."""

    reference: Path | str
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
    device: str = "auto"                 # the PyTorch reference's device (--reference-device)
    artifact_device: str | None = None   # --device: where the artifacts run (hoi_edge.runtime.devices)
    top_k: int = TOP_K
    progress: bool = True
    isolate: bool = True      # one fresh process per backend: comparable peak memory (see memory.py)


def validate(cfg: ValidateConfig) -> ValidationReport:
    """Run everything, fill the report, and write it to ``cfg.out`` when given.

    Everything a user can get wrong is checked before the first backend runs (output folder,
    data, reference, artifacts' source checkpoint). An artifact that cannot be read or run is
    reported as failed and the others are still measured."""
    from hoi_edge.weights.defaults import resolve_checkpoint

    if not cfg.artifacts:
        raise ValidationError("nothing to validate: give at least one artifact folder (--artifacts DIR)")
    if cfg.out is not None:
        check_writable(cfg.out, "--out folder")
    dataset = load_dataset(cfg.data, cfg.images, cfg.limit)
    device, threads = resolve_device(cfg.device), resolve_threads(cfg.threads)
    reference = reference_spec(resolve_checkpoint(cfg.reference), device)
    broken: dict[Path, HOIEdgeError] = {}
    specs = [reference]
    for folder in cfg.artifacts:
        try:
            specs.append(artifact_spec(folder, cfg.artifact_device))
        except HOIEdgeError as exc:
            broken[Path(folder)] = exc
            specs.append(broken_spec(folder))
    if len(broken) == len(cfg.artifacts):          # nothing left to measure: a plain input error, before any run
        raise next(iter(broken.values()))
    specs = unique_labels(specs)
    warnings = _check_sources(specs, broken, cfg.thresholds.allow_checkpoint_mismatch)
    passes = passes_for(cfg.runs, len(dataset.paths))
    settings = RunSettings(warmup=cfg.warmup, threads=threads, progress=cfg.progress, isolate=cfg.isolate,
                           passes=passes)

    ref_run = run_backend(specs[0], dataset.paths, settings)
    vocab = Vocabulary.from_dict(ref_run.vocabulary or {}, source=str(reference.path))
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

    ref_latency = LatencyStats.from_seconds(ref_run.wall_s, ref_run.stage_s)
    ref_accuracy = _accuracy(ref_run, dataset, ecfg)
    runs: list[BackendRun] = [ref_run]
    reports = [_backend_report(ref_run, ref_run, ref_latency, ref_accuracy, dataset, ecfg, cfg.top_k)]
    for spec in specs[1:]:
        error = str(broken[spec.path]) if spec.path in broken else None
        if error is None:
            try:
                if spec.vocabulary_fingerprint != ref_run.vocabulary_fingerprint:
                    raise VocabularyError(f"{spec.path} was baked for another vocabulary than the reference "
                                          f"{reference.path}; re-export it or re-bake it with 'hoi-edge bake'")
                run = run_backend(spec, dataset.paths, settings)
            except HOIEdgeError as exc:
                error = str(exc)
            else:
                runs.append(run)
                reports.append(_backend_report(run, ref_run, ref_latency, ref_accuracy, dataset, ecfg, cfg.top_k))
                continue
        reports.append(BackendReport(spec=spec, backend=spec.target, threads=threads, load_s=None, latency=None,
                                     memory=None, error=error))
    for b in reports:
        if b.accuracy is not None and b.accuracy.full is None:
            warnings.append(f"{b.label}: mAP undefined (no GT pairs in the evaluated images)")
    for b in reports[1:]:
        if not b.broken:
            b.failures = cfg.thresholds.check(b)
    run_failures = cfg.thresholds.check_reference(reports[0], len(dataset.paths))
    if cfg.thresholds.allow_empty_reference and reports[0].triplets == 0:
        warnings.append("the reference found no HOI triplet on any image (allowed by --allow-empty-reference): "
                        "agreement is n/a and the mAP drop compares two empty results")
    report = ValidationReport(
        dataset={**dataset.describe(), "images_dir": str(cfg.images) if cfg.images else None},
        settings={"warmup": cfg.warmup, "runs": cfg.runs, "passes": passes, "timed_runs": passes * len(dataset.paths),
                  "threads": threads, "device": device, "reference_device": device,
                  "artifact_device": cfg.artifact_device or ARTIFACT_DEVICE, "top_k": cfg.top_k, "split": split.name if split else None,
                  "limit": cfg.limit, "isolated": cfg.isolate},
        thresholds=cfg.thresholds, reference=reports[0], artifacts=reports[1:], environment=environment(),
        warnings=warnings, run_failures=run_failures,
    )
    if cfg.out is not None:
        write_outputs(report, cfg.out, runs, dataset)
    return report


def _check_sources(specs: Sequence[BackendSpec], broken: dict, allow_mismatch: bool) -> list[str]:
    """An artifact exported from another checkpoint than the reference is an error (as ``bake`` treats
    it) unless ``allow_mismatch``: comparing unrelated models says nothing about quantization."""
    from hoi_edge.weights.checkpoint import file_sha256

    ref = specs[0]
    ref_sha = file_sha256(ref.path)
    warnings, mismatched = [], []
    for s in specs[1:]:
        if s.path in broken or not s.source_sha256 or s.source_sha256 == ref_sha:
            continue
        line = (f"{s.label} ({s.path}) was exported from another checkpoint than {ref.path} "
                f"(sha256 {s.source_sha256[:12]} vs {ref_sha[:12]})")
        (warnings if allow_mismatch else mismatched).append(line)
    if mismatched:
        raise ValidationError("; ".join(mismatched) + ". Validate against the checkpoint each artifact was exported "
                              "from, or pass --allow-checkpoint-mismatch to compare them anyway")
    return warnings


def _accuracy(run: BackendRun, dataset: Dataset, ecfg) -> MapScores | None:
    if ecfg is None or dataset.groundtruth is None or run.predictions is None:
        return None
    return map_scores(dataset.groundtruth, run.predictions, ecfg)


def _backend_report(run: BackendRun, ref: BackendRun, ref_latency: LatencyStats, ref_accuracy: MapScores | None,
                    dataset: Dataset, ecfg, top_k: int) -> BackendReport:
    latency = LatencyStats.from_seconds(run.wall_s, run.stage_s)
    triplets = len(run.predictions) if run.predictions is not None else None
    if run is ref:
        return BackendReport(spec=run.spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                             latency=latency, memory=run.memory, accuracy=ref_accuracy, speedup=1.0,
                             triplets=triplets, execution=run.execution)
    accuracy = _accuracy(run, dataset, ecfg)
    drop = accuracy.drop_from(ref_accuracy) if accuracy is not None and ref_accuracy is not None else None
    return BackendReport(spec=run.spec, backend=run.backend, threads=run.threads, load_s=run.load_s,
                         latency=latency, memory=run.memory, accuracy=accuracy, map_drop=drop,
                         agreement=compare_predictions(ref.predictions, run.predictions, dataset.names, k=top_k),
                         box_ap=instance_box_ap(ref, run, len(dataset.paths)),
                         speedup=speedup(ref_latency, latency), triplets=triplets, execution=run.execution)


def instance_box_ap(ref: BackendRun, run: BackendRun, num_images: int) -> dict | None:
    """What INT8 costs the detector (:func:`hoi_edge.validate.box_ap.detector_comparison`): box AP (percent,
    persons / objects / overall) of ``run``'s instances before the pipeline's cut (score >= 0.01, NMS) against
    the reference's kept instances, and recall at the pipeline's threshold. ``None`` when either side has no
    detector outputs (an end-to-end network) or the artifact's detector has random weights (nothing real to
    lose: the column is for artifacts with a real detector)."""
    from hoi_edge.validate.box_ap import ImageBoxes, detector_comparison

    if ref.candidates is None or run.candidates is None or ref.box_threshold is None or not _real_detector(run):
        return None
    humans = np.concatenate([ref.candidates.classes[ref.candidates.human], run.candidates.classes[run.candidates.human]])
    person_class = int(humans[0]) if humans.size else -1          # no person anywhere: the persons group is n/a

    def images(kept) -> list[ImageBoxes]:
        return [ImageBoxes(**{k: v for k, v in kept.of_image(i).items() if k != "human"}) for i in range(num_images)]

    return detector_comparison(images(run.candidates), images(ref.candidates), person_class,
                               ref.box_threshold).to_dict()


def _real_detector(run: BackendRun) -> bool:
    """Whether ``run`` is an artifact whose detector had real (not random-init) weights when exported."""
    from hoi_edge.runtime.manifest import Manifest

    try:
        return "detector" not in Manifest.read(run.spec.path).random_init
    except HOIEdgeError:
        return False


def write_outputs(report: ValidationReport, out: str | Path, runs: Sequence[BackendRun] = (),
                  dataset: Dataset | None = None) -> dict[str, Path]:
    """predictions/<backend>.jsonl (readable by ``hoi-edge eval``), report.json, report.md and
    accuracy_latency.png, each written to a temp file and renamed into ``out``."""
    from hoi_edge.validate.plot import plot_accuracy_latency

    out = check_writable(out, "--out folder")
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
