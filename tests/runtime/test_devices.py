"""--device parsing, per-unit devices, and the one-line errors for devices and providers a machine lacks."""

from __future__ import annotations

import pytest

from hoi_edge.core.errors import DeviceError
from hoi_edge.runtime.devices import check_executorch_device, plan_onnx_providers, split_units
from hoi_edge.targets_registry import parse_devices

UNITS = ("detector", "clip_image", "hoi_head")


def test_one_device_for_all_units_or_one_per_unit() -> None:
    assert split_units(None, "CPU") == dict.fromkeys(UNITS, "CPU")
    assert split_units("GPU", "CPU") == dict.fromkeys(UNITS, "GPU")
    assert split_units("HETERO:GPU,CPU", "CPU") == dict.fromkeys(UNITS, "HETERO:GPU,CPU")
    trt = "tensorrt:cache=/tmp/trt,cuda,cpu"
    assert split_units(trt, "cpu") == dict.fromkeys(UNITS, trt)
    assert split_units("detector=GPU,clip_image=NPU,hoi_head=CPU", "CPU") == \
        {"detector": "GPU", "clip_image": "NPU", "hoi_head": "CPU"}
    # a unit's device may itself hold commas; units left out keep the default
    assert split_units("detector=HETERO:GPU,CPU,hoi_head=cuda,cpu", "X") == \
        {"detector": "HETERO:GPU,CPU", "clip_image": "X", "hoi_head": "cuda,cpu"}


@pytest.mark.parametrize("text, message", [
    ("detectr=GPU", "'detectr=GPU' is not 'unit=device'"),
    ("detector=GPU,detector=CPU", "given twice"),
    ("detector=", "no device given for 'detector'"),
])
def test_bad_per_unit_syntax_is_one_line(text, message) -> None:
    with pytest.raises(DeviceError, match=message):
        split_units(text, "CPU")


def test_openvino_devices_are_checked_against_the_machine() -> None:
    nuc = ["CPU", "GPU.0", "GPU.1", "NPU"]
    got = parse_devices("openvino", "detector=gpu.1,clip_image=NPU,hoi_head=AUTO", available=nuc)
    assert got == {"detector": "GPU.1", "clip_image": "NPU", "hoi_head": "AUTO"}
    assert parse_devices("openvino", "GPU", available=nuc)["detector"] == "GPU"      # any GPU.N
    assert parse_devices("openvino", "MULTI:GPU.0,CPU", available=nuc)["hoi_head"] == "MULTI:GPU.0,CPU"
    with pytest.raises(DeviceError, match=r"OpenVINO device 'NPU' is not available on this machine "
                                          r"\(available: CPU; also AUTO"):
        parse_devices("openvino", "HETERO:NPU,CPU", available=["CPU"])
    with pytest.raises(DeviceError, match="'GPU.2' is not available"):
        parse_devices("openvino", "clip_image=GPU.2", available=nuc)
    with pytest.raises(DeviceError, match="needs a device list"):
        parse_devices("openvino", "HETERO", available=nuc)


def test_onnx_providers_keep_priority_and_fall_back_only_when_asked() -> None:
    jetson = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    plan = plan_onnx_providers("tensorrt:fp16:cache=/data/trt,cuda:0,cpu", jetson)
    assert plan.providers == jetson and plan.cpu_fallback
    assert plan.options[0] == {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                               "trt_engine_cache_path": "/data/trt", "trt_timing_cache_enable": "True"}
    assert plan.options[1] == {"device_id": "0"}
    assert not plan_onnx_providers("cuda", jetson).cpu_fallback
    here = ["AzureExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(DeviceError, match=r"CUDAExecutionProvider is not available on this machine \(available: "
                                          r"AzureExecutionProvider, CPUExecutionProvider\); add ',cpu'"):
        plan_onnx_providers("cuda", here)
    fallback = plan_onnx_providers("cuda,cpu", here)          # asked for: runs on the CPU, says so
    assert fallback.providers == ["CPUExecutionProvider"] and fallback.skipped == ["CUDAExecutionProvider"]
    with pytest.raises(DeviceError, match="must come last"):
        plan_onnx_providers("cpu,cuda", jetson)
    with pytest.raises(DeviceError, match="provider 'cudaa' is unknown"):
        plan_onnx_providers("cudaa", jetson)
    with pytest.raises(DeviceError, match="option 'fp8' is not understood"):
        plan_onnx_providers("tensorrt:fp8", jetson)


def test_onnx_openvino_provider_device_is_upper_cased() -> None:
    """ONNX Runtime's OpenVINO provider takes device_type in OpenVINO's spelling (GPU, NPU, HETERO:GPU,CPU):
    ``openvino:gpu`` must reach it as GPU."""
    available = ["OpenVINOExecutionProvider", "CPUExecutionProvider"]
    for typed, device in (("gpu", "GPU"), ("npu", "NPU"), ("Gpu.1", "GPU.1"), ("CPU", "CPU")):
        plan = plan_onnx_providers(f"openvino:{typed},cpu", available)
        assert plan.providers == available and plan.options == [{"device_type": device}, {}], (typed, plan)


def test_executorch_is_xnnpack_and_names_the_others() -> None:
    assert check_executorch_device("CPU") == "xnnpack"
    assert parse_devices("executorch", None) == dict.fromkeys(UNITS, "xnnpack")
    with pytest.raises(DeviceError, match="ExecuTorch backend 'coreml' is not available here"):
        check_executorch_device("coreml")


def test_this_machine_lists_what_it_has() -> None:
    import onnxruntime as ort
    import openvino as ov

    with pytest.raises(DeviceError) as err:
        parse_devices("openvino", "NPU" if "NPU" not in ov.Core().available_devices else "GPU.7")
    assert ", ".join(ov.Core().available_devices) in str(err.value)
    with pytest.raises(DeviceError) as err:
        parse_devices("onnx", "coreml")
    assert ", ".join(ort.get_available_providers()) in str(err.value)
