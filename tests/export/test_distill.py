"""Quantization-aware distillation: the INT8 student moves towards the FP32 teacher, and the OpenVINO
artifact built from it is really INT8 and close to PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from compress.calibration import collect_unit_inputs, list_images
from compress.distill import DistillConfig, quantize_and_distill
from compress.quantize import QuantizationConfig
from hoi_edge.cli import main
from hoi_edge.pipeline import HOIDetector
from hoi_edge.preprocess import load_image
from hoi_edge.runtime.manifest import Manifest


@pytest.fixture(scope="module")
def unit_samples(tiny_detector, calibration):
    return collect_unit_inputs(tiny_detector, list_images(calibration), desc="calibration")


@pytest.mark.slow
@pytest.mark.parametrize("unit", ["hoi_head", "clip_image", "detector"])
def test_distillation_lowers_the_loss_to_the_teacher(tiny_model, unit_samples, unit):
    result = quantize_and_distill(tiny_model.export_unit(unit), unit, unit_samples[unit], QuantizationConfig(),
                                  DistillConfig(steps=40, lr=1e-4), progress=False)
    assert np.isfinite(result.loss_after) and result.loss_after <= result.loss_before
    if unit == "detector":        # the unit PTQ hurts most (query features): distillation must really help
        assert result.loss_after < 0.98 * result.loss_before, (result.loss_before, result.loss_after)


@pytest.mark.slow
def test_distilled_openvino_artifact(tiny_checkpoint, tiny_detector, shared_data, tmp_path):
    out = tmp_path / "ov-int8-kd"
    res = CliRunner().invoke(main, ["export", "--target", "openvino", "--int8", "--model", str(tiny_checkpoint),
                                    "--calib", str(shared_data / "photos"), "--calib-size", "6",
                                    "--distill-steps", "10", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = Manifest.read(out)
    for unit in ("detector", "clip_image", "hoi_head"):
        q = manifest.quantization[unit]
        assert q["steps"] == 10 and q["loss_after"] <= 1.0
    assert "FakeQuantize" in (out / "hoi_head.xml").read_text()
    art = HOIDetector.from_artifact(out)
    image = load_image(shared_data / "photos" / "zidane.jpg")
    ref, got = tiny_detector.run(image), art.run(image)
    assert got.detections and all(0 <= d.score <= 1 for d in got.detections)
    scores_ref = np.array([d.score for d in ref.detections[:20]])
    scores_got = np.array([d.score for d in got.detections[:20]])
    assert np.abs(scores_ref - scores_got).mean() < 0.05


def test_distillation_is_openvino_int8_only(tiny_checkpoint, shared_data, tmp_path):
    res = CliRunner().invoke(main, ["export", "--target", "onnx", "--int8", "--model", str(tiny_checkpoint),
                                    "--calib", str(shared_data / "photos"), "--distill-steps", "5",
                                    "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "distillation is available for openvino int8" in res.output
    assert not (tmp_path / "a").exists()
