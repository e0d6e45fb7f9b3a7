"""Artifacts on OpenVINO's AUTO / HETERO / MULTI (over the CPU here), per-unit devices, ONNX Runtime provider
fallback, and what the runners report as having run each unit."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from hoi_edge import HOIDetector
from hoi_edge.cli import main
from hoi_edge.core.errors import DeviceError


def _key(dets):
    return [(d.hoi, round(d.score, 6), tuple(d.human_box), tuple(d.object_box)) for d in dets]


def test_openvino_virtual_devices_over_the_cpu_give_the_cpu_results(runtime_artifacts, photo_frames) -> None:
    folder = runtime_artifacts["openvino"]
    cpu = HOIDetector.from_artifact(folder)
    expected = _key(cpu.predict(photo_frames[0]))
    assert expected
    for device in ("AUTO", "AUTO:CPU", "HETERO:CPU", "MULTI:CPU", "detector=AUTO,clip_image=HETERO:CPU,hoi_head=CPU"):
        det = HOIDetector.from_artifact(folder, device=device)
        assert _key(det.predict(photo_frames[0])) == expected, device
        info = det.runner.execution_info()
        assert set(info) == {"detector", "clip_image", "hoi_head"}
        assert all(e["executed"] == ["CPU"] for e in info.values()), info
    info = HOIDetector.from_artifact(folder, device="detector=AUTO,hoi_head=MULTI:CPU").runner.execution_info()
    assert [info[u]["requested"] for u in ("detector", "clip_image", "hoi_head")] == ["AUTO", "CPU", "MULTI:CPU"]


def test_a_missing_openvino_device_fails_in_one_line(runtime_artifacts) -> None:
    with pytest.raises(DeviceError, match=r"OpenVINO device 'NPU' is not available on this machine \(available: CPU"):
        HOIDetector.from_artifact(runtime_artifacts["openvino"], device="clip_image=NPU")


def test_onnx_runtime_cpu_fallback_only_when_asked(runtime_artifacts, photo_frames) -> None:
    folder = runtime_artifacts["onnx"]
    with pytest.raises(DeviceError, match="CUDAExecutionProvider is not available on this machine"):
        HOIDetector.from_artifact(folder, device="cuda")
    fell_back = HOIDetector.from_artifact(folder, device="cuda,cpu")
    info = fell_back.runner.execution_info()["detector"]
    assert info["executed"] == ["CPUExecutionProvider"] and "CUDAExecutionProvider" in info["fell_back"]
    assert _key(fell_back.predict(photo_frames[1])) == _key(HOIDetector.from_artifact(folder).predict(photo_frames[1]))
    # Azure's EP is installed everywhere but runs no node: without ',cpu' ORT must not hand the graph to the CPU
    with pytest.raises(DeviceError, match="cannot run every node of this network and the CPU fallback is off"):
        HOIDetector.from_artifact(folder, device="AzureExecutionProvider")
    both = HOIDetector.from_artifact(folder, device="AzureExecutionProvider,cpu").runner.execution_info()
    assert both["hoi_head"]["executed"] == ["AzureExecutionProvider", "CPUExecutionProvider"]


def test_detect_cli_device_errors_are_one_line(runtime_artifacts, photos) -> None:
    res = CliRunner().invoke(main, ["detect", str(photos[0]), "--artifact", str(runtime_artifacts["onnx"]),
                                    "--device", "tensorrt:fp16,cuda", "--no-draw"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "TensorrtExecutionProvider, CUDAExecutionProvider are not available" in res.output, res.output


def test_benchmark_reports_what_ran(runtime_artifacts, shared_data, tmp_path) -> None:
    import json

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["benchmark", "--data", str(shared_data / "photos"), "--device", "AUTO",
                                    "--runs", "2", "--warmup", "0", "--threads", "2", "--quiet", "--no-reference",
                                    "--artifact", str(runtime_artifacts["openvino"]), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "openvino/fp32: detector CPU, clip_image CPU, hoi_head CPU" in res.output
    entry = json.loads(out.read_text())["backends"][0]
    assert entry["device"] == "AUTO" and entry["execution"]["clip_image"] == {"requested": "AUTO", "executed": ["CPU"]}
