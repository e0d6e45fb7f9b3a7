"""What precision OpenVINO's CPU plugin computes an artifact in: never below the artifact's own."""

import openvino as ov
import pytest

from hoi_edge.runtime.openvino_runner import cpu_inference_precision


@pytest.mark.parametrize(("precision", "caps", "expected"), [
    ("fp32", ["BF16", "FP32", "INT8"], "f32"),
    ("fp16", ["BF16", "FP32", "INT8"], "f32"),     # AVX512-BF16 without native f16: bf16 would lose precision
    ("fp16", ["FP16", "BF16", "FP32"], "f16"),     # AMX-FP16 / AVX512-FP16: native f16
    ("fp16", ["FP32", "INT8"], "f32"),
    ("int8", ["BF16", "FP32", "INT8"], "f32"),     # the layers INT8 keeps FP for accuracy: not in bf16
])
def test_the_cpu_precision_never_drops_below_the_artifacts(precision, caps, expected):
    assert cpu_inference_precision(precision, caps) == expected


def test_the_hint_is_what_this_cpu_then_runs():
    """On this machine's CPU the chosen hint is the precision the plugin reports after compiling."""
    import numpy as np
    import openvino.opset13 as ops

    core = ov.Core()
    hint = cpu_inference_precision("fp16", core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    x = ops.parameter([1, 8], np.float32)
    model = ov.Model([ops.matmul(x, ops.constant(np.eye(8, dtype=np.float32)), False, False)], [x])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == {"f32": "<Type: 'float32'>",
                                                                       "f16": "<Type: 'float16'>"}[hint]
