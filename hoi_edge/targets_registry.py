"""Every export target in one table: adding a target is one :class:`Target` entry, one exporter module
(``targets/<name>_target.py``, an ``export_unit`` function) and one runner (a
:class:`hoi_edge.runtime.base.ArtifactRunner` subclass).

Everything else derives from this table: the CLI's ``--target`` choices, the manifest's target and
precision checks, the runner an artifact is loaded with, the export option checks, the package
versions an artifact and a validation report record, the modules a validation worker imports before
its memory baseline, and the benchmark and test lists.

This module imports nothing of the project and no runtime: the runtime package and the exporters
both read it, and a runner or exporter module is imported only when :meth:`Target.load_runner` /
:meth:`Target.load_exporter` is called (importing the registry does not import OpenVINO,
ONNX Runtime or ExecuTorch).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

#: Packages every artifact records besides its target's own (the model side of the export).
BASE_PACKAGES = ("hoi-edge", "torch", "open_clip_torch")


@dataclass(frozen=True)
class Target:
    """One export target and what it can do.

    ``runner`` is ``"module:Class"``; ``preload`` are further modules a fresh validation worker imports
    with the runner module before measuring its baseline memory. ``runtime_package`` is the
    distribution the runner needs (named in reports and benchmark captions); ``export_packages`` are
    the distributions the exporter uses (recorded in the manifest). ``companion_suffixes``: files each
    unit file needs beside it (OpenVINO's weights ``.bin``).
    """

    name: str
    suffix: str
    precisions: tuple[str, ...]
    exporter: str
    runner: str
    runtime_package: str
    export_packages: tuple[str, ...] = ()
    preload: tuple[str, ...] = ()
    companion_suffixes: tuple[str, ...] = ()
    accuracy_aware_int8: bool = False     # --val / --max-drop: accuracy-aware INT8 on the units' task metrics
    distillation: bool = False            # --distill-steps: quantization-aware distillation (INT8)
    ignored_layers: bool = False          # --quantize-all / ignored layers: INT8 that can keep layers in FP

    @property
    def runner_module(self) -> str:
        return self.runner.partition(":")[0]

    def load_runner(self) -> type:
        """The runner class (imports its runtime now, not before)."""
        module, _, cls = self.runner.partition(":")
        return getattr(importlib.import_module(module), cls)

    def load_exporter(self) -> ModuleType:
        """The exporter module (imports torch and the target's toolchain)."""
        return importlib.import_module(self.exporter)


TARGETS: dict[str, Target] = {}


def register(target: Target) -> Target:
    """Add ``target`` (a plugin or a test may add its own); a name is registered once."""
    if target.name in TARGETS:
        raise ValueError(f"target {target.name!r} is already registered")
    TARGETS[target.name] = target
    return target


def unregister(name: str) -> None:
    TARGETS.pop(name, None)


def target_names() -> tuple[str, ...]:
    """Registered target names, in registration order (the CLI's ``--target`` choices)."""
    return tuple(TARGETS)


def get_target(name: str) -> Target | None:
    return TARGETS.get(name)


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


register(Target(
    name="openvino", suffix=".xml", precisions=("fp32", "fp16", "int8"), exporter="targets.openvino_target",
    runner="hoi_edge.runtime.openvino_runner:OpenVINORunner", runtime_package="openvino",
    export_packages=("nncf",), companion_suffixes=(".bin",),
    accuracy_aware_int8=True, distillation=True, ignored_layers=True,
))
register(Target(
    name="onnx", suffix=".onnx", precisions=("fp32", "int8"), exporter="targets.onnx_target",
    runner="hoi_edge.runtime.onnx_runner:ONNXRunner", runtime_package="onnxruntime",
    export_packages=("onnx", "nncf"), accuracy_aware_int8=True, distillation=True, ignored_layers=True,
))
register(Target(
    name="executorch", suffix=".pte", precisions=("fp32", "int8"), exporter="targets.executorch_target",
    runner="hoi_edge.runtime.executorch_runner:ExecuTorchRunner", runtime_package="executorch",
    preload=("executorch.runtime", "executorch.kernels.quantized"),
    accuracy_aware_int8=True, distillation=True, ignored_layers=True,
))
