"""The verdict lines the benchmarks print under their tables (docs/compression.md, docs/edge.md): each can say
met, NOT met, and n/a when there was nothing to measure (n/a never reads as met)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_edge  # noqa: E402
import bench_int8  # noqa: E402


def test_int8_ap50_verdict_needs_both_sets_within_one_point():
    assert bench_int8.ap50_verdict("openvino", "persons", 99.2, 99.0).endswith(": within 1.0 AP50 of FP32")
    assert "NOT within" in bench_int8.ap50_verdict("openvino", "persons", 99.5, 98.9)
    assert "NOT within" in bench_int8.ap50_verdict("openvino", "persons", 97.6, 99.5)
    line = bench_int8.ap50_verdict("onnx", "all classes", None, 99.5)
    assert ": n/a 1.0 AP50" in line and "within" not in line.replace("n/a 1.0", "")


def test_distillation_verdict_compares_ap50_then_ap():
    assert "distillation beats" in bench_int8.distillation_verdict("onnx", (97.2, 91.8), (94.4, 84.2))
    assert "does NOT beat" in bench_int8.distillation_verdict("openvino", (94.0, 95.0), (94.6, 92.1))
    assert "distillation beats" in bench_int8.distillation_verdict("openvino", (94.6, 92.2), (94.6, 92.1))
    assert "does NOT beat" in bench_int8.distillation_verdict("openvino", (94.6, 92.1), (94.6, 92.1))
    assert "n/a" in bench_int8.distillation_verdict("executorch", (None, None), (95.3, 89.4))


def test_edge_goals_are_met_missed_or_na():
    edge = "clip4hoi-edge"
    ms = {(edge, "openvino", "int8"): 36.2, (edge, "executorch", "int8"): 52.0, (edge, "onnx", "int8"): 103.8}
    fps = {(edge, "openvino", "int8"): 30.0, (edge, "executorch", "int8"): 24.8}
    lines = bench_edge.verdicts(ms, fps, vnni=True)
    assert lines[0].endswith("(goal <= 50 ms, VNNI): met") and "openvino" in lines[0]
    assert lines[1].endswith("**NOT met**") and "executorch" in lines[1]
    assert "2.9" in lines[2] and lines[2].endswith("**NOT met**")              # 103.8 / 36.2 against 1.5x
    assert "(openvino)" in lines[3] and lines[3].endswith(": met")
    # without VNNI the bound is 100 ms, and the frames/s goal (stated for a VNNI CPU) is n/a
    no_vnni = bench_edge.verdicts(ms, fps, vnni=False)
    assert no_vnni[1].endswith(": met") and no_vnni[3].endswith(": n/a")
    # nothing measured: every goal n/a, none met
    assert all(line.endswith(": n/a") for line in bench_edge.verdicts({}, {}, vnni=True))
