"""``export``: checkpoint -> artifact folder (three units + baked text + manifest), written atomically.

The folder is assembled under a temporary name beside ``out`` and renamed
into place only when every unit, the text bank and the manifest are written:
a failed or interrupted export never leaves a half-written artifact.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch
from tqdm import tqdm

from compress.bake import bake_text_embeddings, write_text_bank
from compress.calibration import CalibrationConfig, collect_unit_inputs, list_images
from compress.distill import DistillConfig, PairScores
from compress.quantize import QuantizationConfig
from compress.task_metrics import unit_metrics
from hoi_edge.core.atomic import atomic_directory
from hoi_edge.core.errors import ExportError
from hoi_edge.core.provenance import random_init_parts
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.runtime.manifest import Manifest, UnitSpec
from hoi_edge.runtime.torch_runner import detector_from_model
from hoi_edge.targets_registry import Target, export_packages, get_target, target_names
from hoi_edge.weights.checkpoint import file_sha256, load_model
from targets.contract import as_tensors, unit_contracts


@dataclass
class ExportConfig:
    checkpoint: str | Path
    target: str
    out: Path
    precision: str = "fp32"
    vocabulary: str | Path | None = None
    calibration: CalibrationConfig | None = None
    validation: CalibrationConfig | None = None
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    distill: DistillConfig | None = None         # INT8: quantization-aware distillation from FP32
    overwrite: bool = False
    end_to_end: bool = False                     # one network, image in -> triplets out (targets/end_to_end.py)


def target_entry(target: str) -> Target:
    """The registry entry of ``target`` (:mod:`hoi_edge.targets_registry`)."""
    entry = get_target(target)
    if entry is None:
        raise ExportError(f"unknown target '{target}' (choose from {', '.join(target_names())})")
    return entry


def target_module(target: str) -> ModuleType:
    """The exporter module of ``target`` (imports its toolchain)."""
    return target_entry(target).load_exporter()


@dataclass(frozen=True)
class CheckedExport:
    """What :func:`check_config` established: the target, its exporter module and the image lists it verified."""

    target: Target
    module: ModuleType
    calibration: list[Path] | None
    validation: list[Path] | None


def check_config(cfg: ExportConfig) -> CheckedExport:
    """Every user error is raised here, before any slow work (model build or download) starts."""
    target = target_entry(cfg.target)
    if cfg.precision not in target.precisions:
        raise ExportError(f"target '{cfg.target}' supports precisions {target.precisions}, not '{cfg.precision}'")
    if cfg.precision == "int8" and cfg.calibration is None:
        raise ExportError("INT8 needs calibration images: pass --calib DIR (a folder of images or a HICO json)")
    _check_accuracy_control(cfg, target)
    if not target.ignored_layers and (not cfg.quantization.keep_sensitive_fp or cfg.quantization.extra_ignored):
        raise ExportError(f"--quantize-all / ignored layers apply to NNCF ({_capable('ignored_layers')}); "
                          f"{cfg.target} INT8 already quantizes every op its quantizer supports")
    if cfg.distill is not None and not (target.distillation and cfg.precision == "int8"):
        raise ExportError(f"distillation is available for {_capable('distillation')} int8 exports, "
                          f"not {cfg.target} {cfg.precision}")
    if cfg.end_to_end and (cfg.distill is not None or cfg.validation is not None):
        raise ExportError("--end-to-end exports one network with post-training quantization only; "
                          "distillation and accuracy-aware INT8 (--val) apply to the three-unit layout")
    if cfg.distill is not None and cfg.validation is not None:
        raise ExportError("choose either distillation or accuracy-aware quantization (--val), not both")
    out = Path(cfg.out)
    if out.exists() and not cfg.overwrite:
        raise ExportError(f"output {out} already exists (use --overwrite to replace it)")
    calibration = list_images(cfg.calibration) if cfg.calibration is not None else None
    validation = list_images(cfg.validation) if cfg.validation is not None else None
    return CheckedExport(target, target.load_exporter(), calibration, validation)


def _check_accuracy_control(cfg: ExportConfig, target: Target) -> None:
    """--val / --max-drop mean NNCF accuracy-aware INT8, which only targets with that capability run."""
    max_drop, val = cfg.quantization.max_drop, cfg.validation
    if val is None and max_drop is None:
        return
    option = "--val" if val is not None else "--max-drop"
    if not target.accuracy_aware_int8:
        raise ExportError(f"{option} (accuracy-aware INT8) is available for the {_capable('accuracy_aware_int8')} "
                          f"targets, not {cfg.target}")
    if cfg.precision != "int8":
        raise ExportError(f"{option} (accuracy-aware INT8) needs --int8, not precision {cfg.precision}")
    if val is None:
        raise ExportError("--max-drop needs a validation set: pass --val DIR (a folder of images or a HICO json)")
    if max_drop is None:
        raise ExportError("a validation set (--val) needs the allowed drop: set --max-drop")
    if not 0 <= max_drop < 1:
        raise ExportError(f"--max-drop is a drop of each unit's task metric (a fraction) in [0, 1), got {max_drop}")


def _capable(capability: str) -> str:
    """The targets with ``capability`` (a :class:`Target` flag), for error messages."""
    return ", ".join(name for name in target_names() if getattr(get_target(name), capability))


def package_versions() -> dict[str, str]:
    versions = {}
    for name in export_packages():
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def export_artifact(cfg: ExportConfig, progress: bool = True, checked: CheckedExport | None = None) -> Path:
    """Write the artifact folder; ``checked`` is :func:`check_config`'s result when the caller ran it already."""
    checked = checked or check_config(cfg)
    module = checked.module
    model = load_model(cfg.checkpoint, vocabulary=cfg.vocabulary)
    reference = detector_from_model(model)
    spec = reference.spec
    # the detector family says which of its layers stay in FP under INT8 (model/detectors.py)
    qcfg = dataclasses.replace(cfg.quantization, detector_family=model.cfg.detector.family)
    contracts = unit_contracts(model, spec)
    text = bake_text_embeddings(model)          # once: the artifact's bank, and the distillation's pair scores
    samples = validation = None
    if cfg.precision == "int8" and not cfg.end_to_end:
        samples = collect_unit_inputs(reference, checked.calibration, desc="calibration")
        if checked.validation is not None:
            validation = collect_unit_inputs(reference, checked.validation, desc="validation set")
    extra = {}
    if cfg.distill is not None:
        extra = {"distill": cfg.distill, "pair_scores": PairScores(text, spec.scoring.pair_scale)}
    metrics = unit_metrics(spec, reference.labels, text) if validation is not None else {}
    out = Path(cfg.out)
    networks = {unit: model.export_unit for unit in EXPORT_UNITS}
    layout = {}
    if cfg.end_to_end:
        import targets.end_to_end as e2e

        net = e2e.build_end_to_end(model, spec, text)
        contract = e2e.end_to_end_contract(spec)
        contracts, networks = {contract.name: contract}, {contract.name: lambda _unit: net}
        if cfg.precision == "int8":
            samples = {contract.name: e2e.calibration_inputs(checked.calibration, spec)}
        layout = e2e.manifest_fields(spec)
    with atomic_directory(out) as tmp:
        units, notes = {}, {}
        bar = tqdm(list(networks), desc=f"export {cfg.target}/{cfg.precision}", disable=not progress)
        for unit in bar:
            bar.set_postfix_str(unit)      # the network being exported (NNCF's own bars are hidden: core.noise)
            contract = contracts[unit]
            file = unit + checked.target.suffix
            example = as_tensors(samples[unit][0]) if samples else contract.random_example()
            if cfg.end_to_end and not samples:
                example = e2e.example_inputs(spec)
            network = networks[unit](unit)
            shapes = output_shapes(network, example, contract.outputs)
            if unit in metrics:
                extra["metric"] = metrics[unit]
            notes[unit] = module.export_unit(network, contract, example, tmp / file, cfg.precision,
                                             samples=samples[unit] if samples else None, qcfg=qcfg,
                                             validation=validation[unit] if validation else None, **extra)
            units[unit] = UnitSpec(file=file, inputs={k: list(v) for k, v in contract.inputs.items()},
                                   outputs=list(contract.outputs), output_shapes=shapes)
        # what the runtime runs natively (ExecuTorch: XNNPACK's share), every precision; the rest is quantization
        delegation = {u: n.pop("delegation") for u, n in notes.items() if n and "delegation" in n}
        if cfg.precision == "int8":       # INT8 arithmetic depends on the CPU: say which one exported it
            from hoi_edge.core.cpu import cpu_info

            for n in notes.values():
                n["export_cpu"] = cpu_info().to_dict()
        manifest = Manifest(
            target=cfg.target, precision=cfg.precision, units=units, spec=spec,
            vocabulary_fingerprint=model.vocab.fingerprint(),
            source_checkpoint={"path": str(cfg.checkpoint), "sha256": file_sha256(cfg.checkpoint)},
            versions=package_versions(),
            quantization={u: notes[u] for u in units} if cfg.precision == "int8" else {}, delegation=delegation,
            text_embeddings_sha256=write_text_bank(tmp, text, model.vocab),
            random_init=random_init_parts(model.cfg),
            **layout,
        )
        manifest.write(tmp)
    return out


@torch.no_grad()
def output_shapes(network: torch.nn.Module, example: tuple[torch.Tensor, ...],
                  names: tuple[str, ...]) -> dict[str, list[int]]:
    """Static output shapes, recorded so loading can check the text bank's width against hoi_head's output."""
    out = network.eval()(*example)
    out = (out,) if isinstance(out, torch.Tensor) else tuple(out)
    return {name: list(o.shape) for name, o in zip(names, out, strict=True)}
