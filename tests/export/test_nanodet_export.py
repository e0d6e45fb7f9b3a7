"""The NanoDet variant (real NanoDet-g weights, tiny random CLIP and HOI head) exports to every target.

FP32 artifacts find the same instances as PyTorch (classes, boxes within 0.5 px, scores within 1e-3).
INT8 artifacts still find zidane's two people where the FP32 reference does (IoU >= 0.8), on real
weights: a quantization that wrecked the detector would fail here. Calibration: 3 photos (kept small).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from export_cache import export_cached

from compress.calibration import CalibrationConfig
from hoi_edge import HOIDetector
from hoi_edge.core.geometry import pairwise_iou_continuous
from hoi_edge.targets_registry import TARGETS
from targets.export import ExportConfig

CALIB_IMAGES = 3


@pytest.fixture(scope="module")
def nanodet_artifacts(tmp_path_factory, nanodet_checkpoint, shared_data):
    root = tmp_path_factory.mktemp("nanodet_artifacts")
    made: dict[tuple[str, str], Path] = {}

    def get(target: str, precision: str) -> Path:
        if (target, precision) not in made:
            calib = CalibrationConfig(shared_data / "photos", max_images=CALIB_IMAGES) if precision == "int8" else None
            made[target, precision] = export_cached(ExportConfig(
                checkpoint=nanodet_checkpoint, target=target, out=root / f"{target}-{precision}",
                precision=precision, calibration=calib), progress=False)
        return made[target, precision]

    return get


def _kept(detector: HOIDetector, image: Path):
    inst = detector.run(image).instances
    return inst.classes[inst.valid], inst.boxes[inst.valid], inst.scores[inst.valid]


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_fp32_nanodet_artifact_finds_what_pytorch_finds(nanodet_artifacts, nanodet_reference, shared_data, target):
    art = HOIDetector.from_artifact(nanodet_artifacts(target, "fp32"))
    assert art.spec.detector_family == "nanodet" and art.spec.detector_resize == "stretch"
    assert art.manifest.units["detector"].outputs == ["scores", "boxes", "features"]
    for name in ("zidane.jpg", "bus.jpg"):
        want_cls, want_box, want_score = _kept(nanodet_reference, shared_data / "photos" / name)
        have_cls, have_box, have_score = _kept(art, shared_data / "photos" / name)
        assert want_cls.size >= 3 and have_cls.tolist() == want_cls.tolist(), name
        np.testing.assert_allclose(have_box, want_box, atol=0.5)
        np.testing.assert_allclose(have_score, want_score, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_int8_nanodet_artifact_keeps_the_people_on_zidane(nanodet_artifacts, nanodet_reference, shared_data, target):
    image = shared_data / "photos" / "zidane.jpg"
    person = nanodet_reference.spec.detector_classes.index("person")
    want_cls, want_box, want_score = _kept(nanodet_reference, image)
    people = want_box[(want_cls == person) & (want_score > 0.5)]
    assert len(people) == 2
    art = HOIDetector.from_artifact(nanodet_artifacts(target, "int8"))
    assert art.manifest.precision == "int8"
    have_cls, have_box, have_score = _kept(art, image)
    found = have_box[(have_cls == person) & (have_score > 0.4)]
    assert len(found) >= 2, (target, have_cls, have_score)
    assert (pairwise_iou_continuous(people, found).max(axis=1) >= 0.8).all(), (target, people, found)
    if target == "onnx":     # every convolution but the GFL head (kept FP) runs as an integer kernel in ONNX Runtime
        graph = art.manifest.quantization["detector"]["onnxruntime_graph"]
        assert graph["integer_ops"].get("QLinearConv", 0) >= 25 and "FusedConv" not in graph["float_ops"], graph
        assert graph["float_ops"].get("Conv", 0) <= 3, graph          # gfl_cls, one per level
