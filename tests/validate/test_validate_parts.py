"""The validator's parts without a model: agreement matching, latency statistics, thresholds,
datasets, and the report's JSON / Markdown / PNG outputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hoi_edge.core.errors import InputFileError
from hoi_edge.eval import Predictions
from hoi_edge.validate import (
    BackendReport,
    BackendSpec,
    LatencyStats,
    MapScores,
    MemoryStats,
    Thresholds,
    ValidationReport,
    compare_predictions,
    load_dataset,
    match_triplets,
    write_outputs,
)
from hoi_edge.validate.backends import unique_labels
from hoi_edge.validate.errors import ValidationError
from hoi_edge.validate.latency import describe_speedup, device_warning

H = [10.0, 10.0, 50.0, 100.0]
O = [60.0, 40.0, 120.0, 90.0]


def _preds(rows):
    """rows: (image, hoi, score, human_box, object_box)."""
    if not rows:
        return Predictions.from_arrays([], [], [], np.zeros((0, 4)), np.zeros((0, 4)))
    img, hoi, score, h, o = zip(*rows)
    return Predictions.from_arrays(img, hoi, score, np.array(h), np.array(o))


def test_identical_predictions_agree_fully():
    p = _preds([(0, 1, 0.9, H, O), (0, 2, 0.8, H, O), (1, 3, 0.5, O, H)])
    a = compare_predictions(p, p, ["a.jpg", "b.jpg"])
    assert a.topk_overlap == 1.0 and a.score_mae == 0.0 and a.box_iou == pytest.approx(1.0)
    assert a.matched == a.reference_triplets == 3 and a.images == 2


def test_agreement_needs_same_class_and_both_boxes():
    ref = _preds([(0, 1, 0.9, H, O), (0, 2, 0.8, H, O)])
    shifted = [O[0] + 200, O[1], O[2] + 200, O[3]]          # object box moved away: IoU 0
    cand = _preds([(0, 1, 0.7, H, O), (0, 2, 0.8, H, shifted)])
    a = compare_predictions(ref, cand, ["a.jpg"])
    assert a.topk_overlap == 0.5 and a.matched == 1
    assert a.score_mae == pytest.approx(0.2)
    other_class = _preds([(0, 5, 0.9, H, O), (0, 6, 0.8, H, O)])
    assert compare_predictions(ref, other_class, ["a.jpg"]).topk_overlap == 0.0


def test_agreement_is_one_to_one_and_top_k_only():
    ref = _preds([(0, 1, 0.9, H, O), (0, 1, 0.8, H, O)])     # the same triplet twice
    cand = _preds([(0, 1, 0.9, H, O)])
    assert compare_predictions(ref, cand, ["a.jpg"]).topk_overlap == 0.5
    ref = _preds([(0, 1, 0.9, H, O)])
    cand = _preds([(0, 7, 0.99, H, O), (0, 1, 0.1, H, O)])     # the match is outside the candidate's top-1
    assert compare_predictions(ref, cand, ["a.jpg"], k=1).topk_overlap == 0.0
    assert compare_predictions(ref, cand, ["a.jpg"], k=2).topk_overlap == 1.0


def test_agreement_on_empty_images_is_not_applicable():
    """A reference that found nothing gives nothing to agree with: n/a, never 1.0."""
    empty, some = _preds([]), _preds([(0, 1, 0.9, H, O)])
    both_empty = compare_predictions(empty, empty, ["a.jpg"])
    assert both_empty.topk_overlap is None and not both_empty.comparable and both_empty.per_image[0].overlap is None
    a = compare_predictions(empty, some, ["a.jpg"])
    assert a.topk_overlap is None and a.score_mae is None and a.extra_triplets == 1
    assert compare_predictions(some, empty, ["a.jpg"]).topk_overlap == 0.0
    # the mean runs over the images where the reference found something only
    mixed = compare_predictions(some, some, ["a.jpg", "b.jpg"])
    assert mixed.topk_overlap == 1.0 and mixed.images_compared == 1 and mixed.per_image[1].overlap is None


def test_empty_reference_fails_the_run_unless_allowed():
    from hoi_edge.validate.agreement import compare_predictions as cmp

    empty = _preds([])
    g = cmp(empty, empty, ["a.jpg", "b.jpg"])
    ref = BackendReport(spec=BackendSpec("reference", Path("ref.pt"), "pytorch/fp32", "pytorch", "fp32"),
                        backend="pytorch", threads=1, load_s=0.1, latency=LatencyStats.from_seconds(
                            np.array([0.01]), {}), memory=MemoryStats.not_measured("t"), triplets=0)
    art = BackendReport(spec=BackendSpec("artifact", Path("a"), "openvino/fp32", "openvino", "fp32"),
                        backend="openvino", threads=1, load_s=0.1, latency=ref.latency, memory=ref.memory,
                        agreement=g, triplets=0)
    strict = Thresholds(min_agreement=0.9)
    assert "n/a" in strict.check(art)[0]                       # n/a cannot meet --min-agreement
    assert "found no HOI triplet" in strict.check_reference(ref, 2)[0]
    report = ValidationReport(dataset={"source": "x", "num_images": 2, "has_groundtruth": False},
                              settings={"top_k": 10}, thresholds=Thresholds(), reference=ref, artifacts=[art],
                              run_failures=Thresholds().check_reference(ref, 2))
    assert not report.passed and "n/a" in report.to_markdown() and "PASSED" not in report.to_markdown()
    allowed = Thresholds(min_agreement=0.9, allow_empty_reference=True)
    assert allowed.check(art) == [] and allowed.check_reference(ref, 2) == []


def test_match_triplets_prefers_best_overlap():
    near = [H[0] + 5, H[1], H[2] + 5, H[3]]
    pairs = match_triplets(np.array([1]), np.array([H]), np.array([O]), np.array([1, 1]), np.array([near, H]),
                           np.array([O, O]))
    assert [(r, c) for r, c, _, _ in pairs] == [(0, 1)]


def test_latency_stats_and_ratio_wording():
    lat = LatencyStats.from_seconds(np.array([0.01, 0.02, 0.03, 0.04]), {"detector": np.array([0.005] * 4)})
    assert lat.median_ms == pytest.approx(25.0) and lat.p90_ms == pytest.approx(37.0)
    assert lat.throughput_ips == pytest.approx(4 / 0.1) and lat.stages["detector"].median_ms == pytest.approx(5.0)
    assert describe_speedup("openvino/int8", 2.7, "pytorch/fp32") == "openvino/int8: 2.70x faster than pytorch/fp32"
    assert describe_speedup("onnx/fp32", 0.5, "pytorch/fp32") == "onnx/fp32: 2.00x slower than pytorch/fp32"


def test_isolated_runs_pin_numpy_blas_to_one_thread():
    from hoi_edge.validate.worker import _child_env

    env = _child_env()
    assert env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert str(Path(__file__).resolve().parents[2]) in env["PYTHONPATH"].split(":")


def test_memory_probes_track_an_allocation_in_a_fresh_process():
    """A child touches 200 MB and frees it: the peak must rise by about that and stay up while the
    current RSS falls back (a probe returning the current RSS, or a stale value, fails here)."""
    from hoi_edge.validate.worker import _child_env

    script = ("import json, numpy as np\n"
              "from hoi_edge.validate.memory import current_rss_mb, peak_rss_mb\n"
              "before = peak_rss_mb()[0]\n"
              "a = np.ones(200 * 2**20, dtype=np.uint8)\n"
              "held = current_rss_mb()\n"
              "del a\n"
              "peak, method = peak_rss_mb()\n"
              "print(json.dumps(dict(before=before, held=held, peak=peak, after=current_rss_mb(), method=method)))\n")
    proc = subprocess.run([sys.executable, "-c", script], env=_child_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    m = json.loads(proc.stdout)
    assert 180 < m["peak"] - m["before"] < 260, m
    assert m["peak"] >= m["held"] - 1 and m["after"] < m["peak"] - 150, m
    assert m["method"]


def test_validation_timing_passes():
    from hoi_edge.validate.measure import RunSettings, passes_for

    assert passes_for(20, 2) == 10 and passes_for(20, 14) == 2 and passes_for(20, 600) == 1
    assert passes_for(1, 2) == 1 and passes_for(21, 2) == 11
    assert RunSettings(passes=3).timed_images(2) == [0, 1, 0, 1, 0, 1]
    assert RunSettings(runs=5).timed_images(2) == [0, 1, 0, 1, 0]
    with pytest.raises(ValidationError):
        passes_for(0, 2)


def _spec(label, kind="artifact", device="cpu"):
    return BackendSpec(kind=kind, path=Path(f"/tmp/{label.replace('/', '-')}"), label=label,
                       target=label.split("/")[0], precision=label.split("/")[1], size_bytes=3 * 2**20,
                       device=device)


def _backend(label, median_s, full, kind="artifact", agreement=None, device="cpu", gpu_mb=None):
    lat = LatencyStats.from_seconds(np.full(4, median_s), {s: np.full(4, median_s / 5) for s in
                                                            ("preprocess", "detector", "clip_image", "hoi_head",
                                                             "postprocess")})
    return BackendReport(spec=_spec(label, kind, device), backend=label.split("/")[0], threads=2, load_s=0.1,
                         latency=lat, memory=MemoryStats(900.0, 800.0, gpu_mb, "test"),
                         accuracy=MapScores(full=full, rare=None, non_rare=full, mean_recall=50.0),
                         agreement=agreement)


def _report(drop_int8: float, thresholds=Thresholds(), device="cpu", gpu_mb=None) -> ValidationReport:
    from hoi_edge.validate.agreement import AgreementStats

    agree = AgreementStats(10, 0.5, 0.8, 0.6, "a.jpg", 0.01, 0.95, 16, 20, 2)
    ref = _backend("pytorch/fp32", 0.1, 50.0, kind="reference", device=device, gpu_mb=gpu_mb)
    same = _backend("openvino/fp32", 0.05, 50.0, agreement=agree)
    int8 = _backend("openvino/int8", 0.02, 50.0 - drop_int8, agreement=agree)
    for b in (same, int8):
        b.map_drop = b.accuracy.drop_from(ref.accuracy)
        b.speedup = ref.latency.median_ms / b.latency.median_ms
        b.failures = thresholds.check(b)
    return ValidationReport(dataset={"source": "/data/annotations.json", "kind": "hico", "num_images": 2,
                                     "has_groundtruth": True},
                            settings={"warmup": 1, "threads": 2, "device": device, "top_k": 10, "split": None,
                                      "passes": 2},
                            thresholds=thresholds, reference=ref, artifacts=[same, int8],
                            warnings=[w for w in [device_warning(device)] if w])


def test_thresholds_both_ways():
    assert _report(0.5).passed
    failed = _report(2.5)
    assert not failed.passed and len(failed.failures) == 1
    assert "openvino/int8" in failed.failures[0] and "2.50 > 1.00" in failed.failures[0]
    assert _report(2.5, Thresholds(max_map_drop=3.0)).passed
    strict = _report(0.0, Thresholds(max_map_drop=None, min_agreement=0.9))
    assert len(strict.failures) == 2 and all("agreement 0.800 < 0.900" in f for f in strict.failures)
    assert _report(1.0).passed          # exactly at the threshold is allowed


REFERENCE_MAP = {"full": 40.0, "rare": 30.0, "non_rare": 42.0, "unseen": 35.0, "seen": 41.0}


def _zero_shot_report(drops: dict[str, float], split: str | None = "rf_uc", rare: bool = True,
                      undefined: tuple[str, ...] = ()) -> ValidationReport:
    """A reference with every mAP column and one INT8 artifact ``drops[metric]`` points below it per metric;
    ``undefined`` metrics are None for both (no GT of those classes)."""
    def scores(drop: dict[str, float]) -> MapScores:
        v = {m: None if m in undefined or (m == "rare" and not rare) else REFERENCE_MAP[m] - drop.get(m, 0.0)
             for m in REFERENCE_MAP}
        if split is None:
            v["unseen"] = v["seen"] = None
        return MapScores(mean_recall=50.0, split=split, **v)

    report = _report(0.0)
    report.settings["split"] = split
    report.reference.accuracy = scores({})
    for b, drop in zip(report.artifacts, ({}, drops)):
        b.accuracy = scores(drop)
        b.map_drop = b.accuracy.drop_from(report.reference.accuracy)
        b.failures = report.thresholds.check(b)
    return report


@pytest.mark.parametrize("metric, name", [("rare", "Rare"), ("unseen", "Unseen"), ("seen", "Seen")])
def test_each_map_column_is_gated_on_its_own(metric, name):
    """An INT8 artifact that keeps Full mAP but loses the unseen (or rare, or seen) classes fails, naming the
    column and its numbers."""
    report = _zero_shot_report({"full": 0.4, metric: 3.0})
    assert not report.passed and len(report.failures) == 1, report.failures
    failure = report.failures[0]
    assert failure.startswith("openvino/int8 (") and "Full" not in failure, failure
    ref = REFERENCE_MAP[metric]
    assert f"mAP {name} drop 3.00 > 1.00 points (reference {ref:.2f}, artifact {ref - 3.0:.2f})" in failure
    assert _zero_shot_report({"full": 0.4, metric: 1.0}).passed            # at the threshold: allowed
    md = report.to_markdown()
    assert "max mAP drop 1.00 points (Full, Rare, Unseen, Seen)" in md and f"Δ {name}" in md and "3.00 pt" in md


def test_zero_shot_columns_are_gated_only_with_a_split_and_rare_only_when_defined():
    no_split = _zero_shot_report({"unseen": 9.0, "seen": 9.0}, split=None)
    assert no_split.passed and "max mAP drop 1.00 points (Full, Rare)" in no_split.to_markdown()
    no_rare = _zero_shot_report({}, rare=False)
    assert no_rare.passed and "max mAP drop 1.00 points (Full, Unseen, Seen)" in no_rare.to_markdown()
    assert not _zero_shot_report({"full": 1.5}, split=None, rare=False).passed


@pytest.mark.parametrize("metric, name", [("unseen", "Unseen"), ("full", "Full")])
def test_a_gated_column_with_nothing_to_compare_fails_as_na(metric, name):
    """A split asked for on images without an unseen class compares nothing: n/a, not a pass."""
    report = _zero_shot_report({}, undefined=(metric,))
    assert not report.passed and len(report.failures) == 2, report.failures         # both artifacts
    assert f"openvino/int8 (/tmp/openvino-int8): mAP {name} is n/a" in report.failures[1], report.failures
    md = report.to_markdown()
    assert "| n/a |" in md and "a gated n/a fails" in md


@pytest.mark.parametrize("metric, name", [("rare", "Rare"), ("unseen", "Unseen")])
def test_validate_exits_3_naming_the_column(metric, name, monkeypatch, tmp_path):
    """``hoi-edge validate`` on a crafted report whose Rare or Unseen drop exceeds --max-map-drop (Full within it)."""
    from click.testing import CliRunner

    import hoi_edge.validate.validator as validator
    from hoi_edge.validate.cli import THRESHOLD_EXIT_CODE, validate_command

    crafted = _zero_shot_report({"full": 0.2, metric: 2.5})
    monkeypatch.setattr(validator, "validate", lambda cfg: crafted)
    res = CliRunner().invoke(validate_command, [str(tmp_path), "--data", str(tmp_path / "a.json"), "--split", "rf-uc"])
    assert res.exit_code == THRESHOLD_EXIT_CODE, res.output
    assert f"validation failed: openvino/int8 (/tmp/openvino-int8): mAP {name} drop 2.50 > 1.00 points" in res.output
    assert "Traceback" not in res.output


def test_report_files(tmp_path):
    report = _report(2.5)
    written = write_outputs(report, tmp_path / "out")
    data = json.loads(written["json"].read_text())
    assert {"format", "passed", "failures", "warnings", "dataset", "settings", "thresholds", "environment",
            "reference", "artifacts"} <= set(data)
    assert data["passed"] is False and data["thresholds"]["max_map_drop"] == 1.0
    art = data["artifacts"][1]
    assert {"label", "size_mb", "latency", "memory", "accuracy", "map_drop", "agreement", "speedup", "passed",
            "failures"} <= set(art)
    assert art["map_drop"]["full"] == pytest.approx(2.5) and art["latency"]["stages"]["detector"]["median_ms"] > 0
    assert art["memory"]["model_rss_mb"] == pytest.approx(100.0) and math.isclose(art["speedup"], 5.0)
    md = written["markdown"].read_text()
    assert "FAILED" in md and "| pytorch/fp32 (reference) |" in md and "| openvino/int8 |" in md
    assert "**FAIL**" in md and "Δ mAP Full" in md and "2.50 pt" in md and "900 (+100)" in md
    png = written["plot"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(written["plot"])
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    assert not list((tmp_path / "out").glob(".*"))          # no temp files left behind


def test_cpu_report_has_no_gpu_column_or_device_warning():
    md = _report(0.5).to_markdown()
    assert "GPU peak MB" not in md and "| Speed-up |" in md and "not like for like" not in md
    assert "| pytorch/fp32 (reference) |" in md and "1 warm-up + 4 timed runs per backend (2 passes" in md
    assert "before the model was loaded" in md and "OpenVINO or ONNX Runtime alone" in md


def test_gpu_reference_is_flagged_and_its_memory_shown():
    """Reference on CUDA, artifacts on the CPU: the ratio is GPU vs CPU, and the report must say so."""
    report = _report(0.5, device="cuda", gpu_mb=321.4)
    md = report.to_markdown()
    assert "| pytorch/fp32 (reference, cuda) |" in md and "Speed-up vs cuda" in md
    assert "Reference on cuda, artifacts on cpu" in md
    assert "GPU peak MB" in md and "| 321 |" in md and "max_memory_allocated" in md
    assert "not like for like" in md and "--reference-device cpu" in md
    data = json.loads(report.to_json())
    assert data["reference"]["device"] == "cuda" and data["reference"]["memory"]["gpu_peak_mb"] == 321.4
    assert any("--reference-device cpu" in w for w in data["warnings"])
    assert device_warning("cpu") is None and "benchmark --reference-device cpu" in device_warning("cuda:0", "benchmark")


def test_benchmark_markdown_with_a_gpu_reference():
    from hoi_edge.validate.benchmarking import BenchmarkReport

    ref = _backend("pytorch/fp32", 0.01, 50.0, kind="reference", device="cuda", gpu_mb=100.0)
    ov = _backend("openvino/fp32", 0.05, 50.0)
    ref.speedup, ov.speedup = 1.0, 0.2
    bench = BenchmarkReport(entries=[ref, ov], images={"num_images": 3, "source": "/photos"},
                            settings={"warmup": 1, "runs": 4, "threads": 2, "device": "cuda"},
                            warnings=[device_warning("cuda", "benchmark")])
    md = bench.to_markdown()
    assert "vs pytorch/fp32 (cuda)" in md and "GPU peak MB" in md and "| 100 |" in md and "| — |" in md
    assert "reference on cuda, artifacts on cpu" in md and "hoi-edge benchmark --reference-device cpu" in md
    assert json.loads(bench.to_json())["warnings"] == bench.warnings


def test_unique_labels():
    a, b = _spec("openvino/int8"), BackendSpec(**{**_spec("openvino/int8").__dict__, "path": Path("/x/other")})
    labels = [s.label for s in unique_labels([_spec("pytorch/fp32", "reference"), a, b])]
    assert labels == ["pytorch/fp32", "openvino/int8 [openvino-int8]", "openvino/int8 [other]"]


def test_dataset_folder_and_hico(hico_dir, shared_data, tmp_path):
    photos = load_dataset(shared_data / "photos", limit=3)
    assert len(photos) == 3 and not photos.has_groundtruth and photos.names == tuple(sorted(photos.names))
    hico = load_dataset(hico_dir / "annotations.json")
    assert len(hico) == 2 and hico.groundtruth.num_images == 2
    one = load_dataset(hico_dir / "annotations.json", limit=1)
    assert one.groundtruth.filenames == hico.names[:1]
    assert one.groundtruth.num_pairs == int(np.sum(hico.groundtruth.image == 0))


def test_dataset_errors_name_the_problem(hico_dir, tmp_path):
    with pytest.raises(InputFileError, match="missing from"):
        load_dataset(hico_dir / "annotations.json", images=tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        load_dataset(tmp_path / "nope.json")
    with pytest.raises(InputFileError, match="no images"):
        load_dataset(tmp_path)
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(InputFileError, match="HICO-format"):
        load_dataset(tmp_path / "x.txt")


def test_public_api_names_resolve_to_the_right_objects():
    import importlib

    import hoi_edge.validate as v

    importlib.import_module("hoi_edge.validate.benchmarking")     # a loaded submodule must not shadow a name
    for name in v.__all__:
        obj = getattr(v, name)
        assert getattr(obj, "__name__", name) == name, name


def test_plot_labels_of_nearby_points_do_not_overlap_and_map_axis_is_not_negative(tmp_path):
    """Four backends at almost the same place, mAP near 0: labels apart, y axis from 0."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from hoi_edge.validate.plot import _percent_limits, place_labels

    fig = Figure(figsize=(7.5, 5.0), dpi=120)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    items = [(f"openvino/int8 [{i}]", 10.0 + 0.01 * i, 0.1 + 0.001 * i) for i in range(4)]
    ax.scatter([x for _, x, _ in items], [y for _, _, y in items])
    _percent_limits(ax, [y for _, _, y in items])
    assert ax.get_ylim()[0] >= 0.0 and ax.get_ylim()[1] - ax.get_ylim()[0] >= 1.0
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in place_labels(ax, renderer, items)]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    report = _report(60.0)                   # the INT8 point at -10 %: the axis must still start at 0
    report.artifacts[1].accuracy = MapScores(full=0.0, rare=None, non_rare=0.0, mean_recall=0.0)
    written = write_outputs(report, tmp_path / "out")
    assert written["plot"].is_file()


def test_broken_artifact_is_reported_and_na_agreement_rendered():
    report = _report(0.5)
    from hoi_edge.validate.backends import broken_spec

    report.artifacts.append(BackendReport(spec=broken_spec("/tmp/missing-artifact"), backend="?", threads=2,
                                          load_s=None, latency=None, memory=None, error="artifact folder not found"))
    md = report.to_markdown()
    assert not report.passed and "**BROKEN**" in md and "artifact folder not found" in md
    data = json.loads(report.to_json())
    assert data["artifacts"][-1]["error"] == "artifact folder not found" and data["artifacts"][-1]["latency"] is None


def test_unwritable_out_fails_before_any_work(tmp_path):
    """A --out under a regular file cannot be created: one line naming it, before anything is run."""
    from hoi_edge.core.atomic import check_writable
    from hoi_edge.validate import ValidateConfig, validate

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputFileError, match="cannot write --out folder .*a-file"):
        check_writable(blocker / "report", "--out folder")
    # validate checks it first: the reference below does not even exist
    with pytest.raises(InputFileError, match="cannot write --out folder"):
        validate(ValidateConfig(reference=tmp_path / "no.pt", artifacts=[tmp_path], data=tmp_path,
                                out=blocker / "report"))
    check_writable(tmp_path / "new" / "deeper", "--out folder")     # creatable: fine, and nothing created
    assert not (tmp_path / "new").exists()


def test_noisy_machine_is_noticed():
    """A drifting or busy machine is flagged (bench_runtimes then refuses its paste-ready table)."""
    from hoi_edge.validate.benchmarking import noise_warnings, relative_spread
    from hoi_edge.validate.environment import CpuMeter

    assert relative_spread(np.full(20, 0.01)) == 0.0
    assert relative_spread(np.r_[np.full(10, 0.01), np.full(10, 0.03)]) > 0.25     # speed changed half-way
    quiet = {"other_processes_cpu": 0.02, "load_average_1m_before": 0.1, "logical_cpus": 2,
             "spread": {"pytorch/fp32": 0.05}}
    assert noise_warnings(quiet) == []
    busy = {**quiet, "other_processes_cpu": 0.6, "spread": {"pytorch/fp32": 0.9}}
    warned = noise_warnings(busy)
    assert len(warned) == 2 and "machine busy" in warned[0] and "pytorch/fp32 90 %" in warned[1]
    meter = CpuMeter([])                        # a process that is not ours spins for a second
    subprocess.run([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"])
    reading = meter.stop()
    assert reading["other_processes_cpu"] is not None and reading["other_processes_cpu"] > 0.05
