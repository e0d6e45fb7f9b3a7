"""Every export target in one table: adding a target is one :class:`Target` entry, one exporter module
(``targets/<name>_target.py``, an ``export_unit`` function) and one runner (a
:class:`hoi_edge.runtime.base.ArtifactRunner` subclass).

Everything else derives from this table: the CLI's ``--target`` choices and ``--device`` help, the
manifest's target and precision checks (:func:`read_manifest`), the runner an artifact is loaded with, how
``--device`` is parsed and checked for it, the export option checks, the package versions an artifact and a
validation report record, the modules a validation worker imports before its memory baseline, and the
benchmark and test lists.

Importing this module imports no runtime: each entry names its runner and exporter through small loader
functions that import them when called (plain imports, which static tools and the import-graph test follow).
The runtime modules below it (manifest, runners, device parsers) never import this table, so the table can
point at them without a cycle: the layers above (artifact loading, the CLI, export) read the table and hand
the runtime what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Sequence

from hoi_edge.core.errors import ArtifactError, DeviceError
from hoi_edge.core.registry import Registry
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.runtime import devices as dev
from hoi_edge.runtime.manifest import Manifest

#: Packages every artifact records besides its target's own (the model side of the export).
BASE_PACKAGES = ("hoi-edge", "torch", "open_clip_torch")


@dataclass(frozen=True)
class Target:
    """One export target and what it can do.

    ``load_runner`` returns the runner class, ``load_exporter`` the exporter module, ``preload`` imports what
    else a fresh validation worker needs before measuring its baseline memory (each imports its runtime only
    when called). ``runtime_package`` is the distribution the runner needs (named in reports and benchmark
    captions); ``export_packages`` are the distributions the exporter uses (recorded in the manifest).
    ``companion_suffixes``: files each unit file needs beside it (OpenVINO's weights ``.bin``).

    ``--device``: ``default_device`` is where a unit runs when none is named; ``check_device(text, available)``
    turns one unit's device text into what the runner takes (or raises :class:`DeviceError`);
    ``available_devices()`` asks the runtime what this machine has; ``device_help`` is the CLI's help.
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    load_exporter: Callable[[], ModuleType]
    load_runner: Callable[[], type]
    runtime_package: str
    default_device: str
    check_device: Callable[[str, Sequence[str]], Any]
    available_devices: Callable[[], list[str]]
    device_help: str
    export_packages: tuple[str, ...] = ()
    preload: Callable[[], None] = field(default=lambda: None)
    companion_suffixes: tuple[str, ...] = ()
    accuracy_aware_int8: bool = False     # --val / --max-drop: accuracy-aware INT8 on the units' task metrics
    distillation: bool = False            # --distill-steps: quantization-aware distillation (INT8)
    ignored_layers: bool = False          # --quantize-all / ignored layers: INT8 that can keep layers in FP

    def parse_devices(self, device: str | None, available: Sequence[str] | None = None,
                      unit_names: Sequence[str] = EXPORT_UNITS) -> dict[str, Any]:
        """Per-unit device choice (``GPU`` or ``detector=GPU,clip_image=NPU``), checked against ``available``
        (default: what the runtime reports on this machine)."""
        units = dev.split_units(device, self.default_device, unit_names)
        if available is None:
            available = self.available_devices()
        return {u: self.check_device(d, available) for u, d in units.items()}

    def check_artifact(self, manifest: Manifest, folder: Path) -> None:
        """The manifest's precision is one this target exports, and every unit's companion files are there."""
        if manifest.precision not in all_precisions():
            raise ArtifactError(f"{folder / 'manifest.json'}: unknown precision {manifest.precision!r} "
                                f"(expected one of {', '.join(all_precisions())})")
        if manifest.precision not in self.precisions:
            raise ArtifactError(f"{folder / 'manifest.json'}: precision {manifest.precision!r} is not one of target "
                                f"'{self.name}' ({', '.join(self.precisions)})")
        companions = [Path(u.file).with_suffix(s).name for s in self.companion_suffixes for u in manifest.units.values()]
        missing = [n for n in companions if not (folder / n).is_file()]
        if missing:
            raise ArtifactError(f"artifact {folder} is incomplete: missing {missing}")


TARGETS: Registry[Target] = Registry("target")
#: Add a target (a plugin or a test may add its own); a name is registered once.
register = TARGETS.register
unregister = TARGETS.unregister


def target_names() -> tuple[str, ...]:
    """Registered target names, in registration order (the CLI's ``--target`` choices)."""
    return tuple(TARGETS)


def get_target(name: str) -> Target | None:
    return TARGETS.get(name)


def target_of(manifest: Manifest, folder: Path) -> Target:
    """The entry of an artifact's target; an unknown one is a clear error naming the manifest."""
    target = TARGETS.get(manifest.target)
    if target is None:
        raise ArtifactError(f"{Path(folder) / 'manifest.json'}: unknown target {manifest.target!r} "
                            f"(expected one of {', '.join(target_names())})")
    return target


def read_manifest(folder: str | Path) -> tuple[Manifest, Target]:
    """An artifact's manifest (structure, file names and unit files checked by :meth:`Manifest.read`), its target's
    entry, and the target's own checks (precision, companion files): what every reader of an artifact uses."""
    folder = Path(folder)
    manifest = Manifest.read(folder)
    target = target_of(manifest, folder)
    target.check_artifact(manifest, folder)
    return manifest, target


def parse_devices(target: str, device: str | None, available: Sequence[str] | None = None,
                  unit_names: Sequence[str] = EXPORT_UNITS) -> dict[str, Any]:
    """:meth:`Target.parse_devices` of the target named ``target``."""
    entry = TARGETS.get(target)
    if entry is None:
        raise DeviceError(f"--device: unknown target {target!r} (known: {', '.join(target_names())})")
    return entry.parse_devices(device, available, unit_names)


def device_help() -> str:
    """``--device`` help for every command, one clause per registered target."""
    return ("Where artifact networks run: one device, or one per network ('detector=GPU,clip_image=NPU'); " +
            "; ".join(f"{t.name}: {t.device_help}" for t in TARGETS.values()) + ". Default: the CPU.")


def all_precisions() -> tuple[str, ...]:
    """Every precision some target exports, in first-seen order."""
    return tuple(dict.fromkeys(p for t in TARGETS.values() for p in t.precisions))


def export_packages() -> tuple[str, ...]:
    """Distributions whose versions an artifact's manifest records."""
    return tuple(dict.fromkeys(BASE_PACKAGES + tuple(p for t in TARGETS.values()
                                                     for p in (t.runtime_package, *t.export_packages))))


def runtime_packages(names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The runtime distribution of each target in ``names`` (default: all), in registry order."""
    return tuple(dict.fromkeys(t.runtime_package for t in TARGETS.values() if names is None or t.name in names))


# ---------------------------------------------------------------- OpenVINO

def _openvino_exporter() -> ModuleType:
    from targets import openvino_target

    return openvino_target


def _openvino_runner() -> type:
    from hoi_edge.runtime.openvino_runner import OpenVINORunner

    return OpenVINORunner


def _openvino_devices() -> list[str]:
    import openvino as ov

    return list(ov.Core().available_devices)


register(Target(
    name="openvino", suffix=".xml", precisions=("fp32", "fp16", "int8"), load_exporter=_openvino_exporter,
    load_runner=_openvino_runner, runtime_package="openvino", export_packages=("nncf",), companion_suffixes=(".bin",),
    default_device="CPU", check_device=dev.check_openvino_device, available_devices=_openvino_devices,
    device_help="CPU, GPU, GPU.1, NPU, AUTO, HETERO:GPU,CPU, MULTI:GPU,CPU",
    accuracy_aware_int8=True, distillation=True, ignored_layers=True,
))


# ---------------------------------------------------------------- ONNX Runtime

def _onnx_exporter() -> ModuleType:
    from targets import onnx_target

    return onnx_target


def _onnx_runner() -> type:
    from hoi_edge.runtime.onnx_runner import ONNXRunner

    return ONNXRunner


def _onnx_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


register(Target(
    name="onnx", suffix=".onnx", precisions=("fp32", "int8"), load_exporter=_onnx_exporter, load_runner=_onnx_runner,
    runtime_package="onnxruntime", export_packages=("onnx", "nncf"),
    accuracy_aware_int8=True, distillation=True, ignored_layers=True,
    default_device="cpu", check_device=dev.plan_onnx_providers, available_devices=_onnx_providers,
    device_help="providers in priority order, e.g. 'tensorrt:fp16:cache=DIR,cuda,cpu' (only a trailing 'cpu' "
                "lets the CPU run what the accelerator cannot)",
))


# ---------------------------------------------------------------- ExecuTorch

def _executorch_exporter() -> ModuleType:
    from targets import executorch_target

    return executorch_target


def _executorch_runner() -> type:
    from hoi_edge.runtime.executorch_runner import ExecuTorchRunner

    return ExecuTorchRunner


def _executorch_preload() -> None:
    """The Python runtime and its quantized kernels, loaded by the runner on first use."""
    import executorch.kernels.quantized  # noqa: F401
    import executorch.runtime  # noqa: F401


register(Target(
    name="executorch", suffix=".pte", precisions=("fp32", "int8"), load_exporter=_executorch_exporter,
    load_runner=_executorch_runner, runtime_package="executorch", preload=_executorch_preload,
    default_device="xnnpack", check_device=lambda device, available: dev.check_executorch_device(device),
    available_devices=lambda: ["xnnpack"], device_help="xnnpack (alias cpu), the backend the .pte files are lowered for",
    accuracy_aware_int8=True, distillation=True, ignored_layers=True,
))
