"""NNCF accuracy-aware INT8: each validation item is compared with its own FP32 reference, and the
CLI path records what it ran and achieved."""

from __future__ import annotations

import numpy as np
import openvino as ov
import pytest
import torch
from click.testing import CliRunner

from compress.quantize import reference_items, similarity_to_reference
from hoi_edge.cli import main
from hoi_edge.runtime.manifest import Manifest


def _tiny_ov_model() -> ov.Model:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    return ov.convert_model(net, example_input=torch.zeros(1, 8))


def test_each_validation_item_carries_its_own_reference():
    model = _tiny_ov_model()
    rng = np.random.default_rng(0)
    validation = [(rng.standard_normal((1, 8)).astype(np.float32),) for _ in range(4)]
    items = reference_items(model, validation)
    compiled = ov.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    # NNCF calls validation_fn on subsets (one item while ranking layers, out of order): still identical
    for subset in ([items[2]], [items[3], items[0]], items):
        metric, per_item = similarity_to_reference(compiled, subset)
        assert metric == pytest.approx(1.0, abs=1e-6) and len(per_item) == len(subset)
    # and a different model scores below 1 against the same references
    other = ov.compile_model(_tiny_ov_model_shifted(), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    assert similarity_to_reference(other, [items[1]])[0] < 0.999


def _tiny_ov_model_shifted() -> ov.Model:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    return ov.convert_model(net, example_input=torch.zeros(1, 8))


@pytest.mark.slow
def test_accuracy_aware_export_end_to_end(tiny_checkpoint, shared_data, tmp_path):
    out = tmp_path / "ov-int8-aa"
    val = shared_data / "hicodet" / "real_test_images" / "annotations.json"     # 2 real HICO images
    res = CliRunner().invoke(main, ["export", "--target", "openvino", "--int8", "--model", str(tiny_checkpoint),
                                    "--calib", str(shared_data / "photos"), "--calib-size", "3",
                                    "--val", str(val), "--max-drop", "0.5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = Manifest.read(out)
    for unit in ("detector", "clip_image", "hoi_head"):
        q = manifest.quantization[unit]
        assert q["method"] == "nncf.quantize_with_accuracy_control" and q["max_drop"] == 0.5
        assert q["validation_samples"] == 2 and q["max_drop_met"] and 0.5 < q["validation_value"] <= 1.0 + 1e-6
    # each unit is held to its task: box AP for the detector, pair-score agreement for the HOI head
    assert "box AP50" in manifest.quantization["detector"]["metric"]
    assert "pair-score" in manifest.quantization["hoi_head"]["metric"]
    assert "FakeQuantize" in (out / "hoi_head.xml").read_text()
