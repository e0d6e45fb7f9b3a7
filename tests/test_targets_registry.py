"""A target added to the registry alone shows up everywhere that lists or checks targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hoi_edge.cli import main
from hoi_edge.core.errors import ArtifactError, DeviceError
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.runtime.artifact import make_runner
from hoi_edge.runtime.manifest import Manifest, UnitSpec
from hoi_edge.targets_registry import (
    TARGETS,
    Target,
    all_precisions,
    device_help,
    export_packages,
    get_target,
    parse_devices,
    register,
    runtime_packages,
    target_names,
    target_of,
    unregister,
)


class FakeRunner:
    name = "fake"

    def __init__(self, folder: Path, manifest: Manifest, num_threads: int | None = None, device: str | None = None,
                 devices: dict | None = None) -> None:
        self.folder, self.manifest, self.num_threads, self.devices = folder, manifest, num_threads, devices


def _fake_device(text: str, available: list[str]) -> str:
    if text.lower() not in available:
        raise DeviceError(f"fakert device {text!r} is not available (available: {', '.join(available)})")
    return text.lower()


def _no_exporter():
    raise ImportError("no fakert exporter here")


FAKE = Target(name="fakert", suffix=".fk", precisions=("fp32", "int4"), load_exporter=_no_exporter,
              load_runner=lambda: FakeRunner, runtime_package="fakert-runtime", export_packages=("fakert-tools",),
              companion_suffixes=(".idx",), default_device="dsp0", check_device=_fake_device,
              available_devices=lambda: ["dsp0", "dsp1"], device_help="dsp0, dsp1 (the fake DSPs)")


@pytest.fixture
def fake_target():
    register(FAKE)
    yield FAKE
    unregister(FAKE.name)


def _manifest(target: str, precision: str) -> Manifest:
    units = {u: UnitSpec(file=u + (get_target(target).suffix if get_target(target) else ".x"), inputs={}, outputs=[])
             for u in EXPORT_UNITS}
    return Manifest(target=target, precision=precision, units=units, spec=None, vocabulary_fingerprint="",
                    source_checkpoint={}, versions={})


def test_the_built_in_targets_are_registered() -> None:
    assert target_names() == ("openvino", "onnx", "executorch")
    assert all_precisions() == ("fp32", "fp16", "int8")
    assert {"hoi-edge", "torch", "open_clip_torch", "openvino", "onnx", "onnxruntime", "nncf",
            "executorch"} == set(export_packages())
    assert runtime_packages(("onnx",)) == ("onnxruntime",)


def test_importing_the_registry_imports_no_runner_module() -> None:
    import subprocess
    import sys

    code = ("import sys, hoi_edge.targets_registry as r; print(sorted(m for m in sys.modules "
            "if m.endswith('_runner') or m.startswith('targets.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert TARGETS["openvino"].load_runner().__name__ == "OpenVINORunner"      # and the loaders do load them


def test_a_registered_target_is_a_cli_choice(fake_target, tmp_path) -> None:
    res = CliRunner().invoke(main, ["export", "--help"])
    assert "openvino|onnx|executorch|fakert" in res.output, res.output
    # the CLI accepts it (any case) and hands it to the export checks, which use its entry
    res = CliRunner().invoke(main, ["export", "--target", "FakeRT", "--int8", "--out", str(tmp_path / "a")])
    assert res.exit_code == 1 and "supports precisions ('fp32', 'int4'), not 'int8'" in res.output, res.output


def test_an_unregistered_target_is_not_a_cli_choice(tmp_path) -> None:
    res = CliRunner().invoke(main, ["export", "--target", "fakert", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "'fakert' is not one of openvino, onnx, executorch" in res.output, res.output


def test_a_registered_target_passes_the_manifest_checks(fake_target, tmp_path) -> None:
    manifest = _manifest("fakert", "int4")
    target = target_of(manifest, tmp_path)
    with pytest.raises(ArtifactError, match="precision 'fp16' is not one of target 'fakert' \\(fp32, int4\\)"):
        target.check_artifact(_manifest("fakert", "fp16"), tmp_path)
    for unit in manifest.units.values():
        (tmp_path / unit.file).write_text("")
    (tmp_path / "text_embeddings.npy").write_text("")
    (tmp_path / "vocabulary.json").write_text("")
    manifest.check_files(tmp_path)
    with pytest.raises(ArtifactError, match=r"incomplete: missing \['detector.idx'"):
        target.check_artifact(manifest, tmp_path)
    for unit in EXPORT_UNITS:
        (tmp_path / f"{unit}.idx").write_text("")
    target.check_artifact(manifest, tmp_path)
    runner = make_runner(manifest, tmp_path, num_threads=3)
    assert isinstance(runner, FakeRunner) and runner.num_threads == 3
    assert runner.devices == dict.fromkeys(EXPORT_UNITS, "dsp0")
    assert "fakert-runtime" in export_packages() and "fakert-tools" in export_packages()


def test_a_registered_target_parses_its_devices(fake_target, tmp_path) -> None:
    """Its own parser, default device and help, with no code of the project naming it."""
    assert parse_devices("fakert", "detector=DSP1") == {"detector": "dsp1", "clip_image": "dsp0", "hoi_head": "dsp0"}
    with pytest.raises(DeviceError, match="fakert device 'gpu' is not available \\(available: dsp0, dsp1\\)"):
        parse_devices("fakert", "gpu")
    runner = make_runner(_manifest("fakert", "fp32"), tmp_path, device="clip_image=dsp1")
    assert runner.devices["clip_image"] == "dsp1" and runner.devices["detector"] == "dsp0"
    assert "fakert: dsp0, dsp1 (the fake DSPs)" in device_help()
    res = CliRunner().invoke(main, ["detect", "--help"])
    assert res.exit_code == 0 and "openvino: CPU, GPU" in " ".join(res.output.split())


def test_an_unregistered_target_fails_the_manifest_checks(tmp_path) -> None:
    with pytest.raises(ArtifactError, match="unknown target 'fakert' \\(expected one of openvino, onnx, executorch\\)"):
        target_of(_manifest("fakert", "fp32"), tmp_path)
    with pytest.raises(ArtifactError, match="unknown target 'fakert'"):
        make_runner(_manifest("fakert", "fp32"), tmp_path)
    with pytest.raises(DeviceError, match="unknown target 'fakert'"):
        parse_devices("fakert", "dsp0")


def test_a_name_is_registered_once(fake_target) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register(FAKE)
