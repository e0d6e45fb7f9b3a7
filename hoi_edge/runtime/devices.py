"""``--device``: which accelerator each export unit runs on, parsed per runtime and checked against what
this machine has, so a missing GPU, NPU or execution provider fails with one line listing what exists.

Syntax (one string reaches every runtime, the validator's worker processes included):

* one device for all three units: ``GPU``; or one per unit: ``detector=GPU,clip_image=NPU,hoi_head=CPU``
  (units left out run on the target's default device);
* OpenVINO: ``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``, ``AUTO:GPU,CPU``, ``HETERO:GPU,CPU``,
  ``MULTI:GPU,CPU`` (case-insensitive);
* ONNX Runtime: execution providers in priority order, ``cuda,cpu``; each may carry options after ``:``:
  ``tensorrt:fp16:cache=DIR`` (TensorRT FP16 and its engine-cache folder), ``cuda:1`` (device id),
  ``openvino:GPU`` (the OpenVINO EP's device). The CPU runs nodes the accelerator cannot only when ``cpu``
  is in the list: without it, ORT's silent CPU fallback is switched off and a missing provider is an error;
* ExecuTorch: ``xnnpack`` (alias ``cpu``), the backend the ``.pte`` files are lowered for.

Each target's entry in :mod:`hoi_edge.targets_registry` names its parser here, its default device and how to
ask its runtime what this machine has; :meth:`hoi_edge.targets_registry.Target.parse_devices` applies them to
every network. This module knows no target by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from hoi_edge.core.errors import DeviceError
from hoi_edge.core.suggest import did_you_mean
from hoi_edge.core.units import EXPORT_UNITS

__all__ = ["DeviceError", "OrtPlan", "check_executorch_device", "check_openvino_device", "check_torch_device",
           "plan_onnx_providers", "split_units"]


def split_units(text: str | None, default: str, units: Sequence[str] = EXPORT_UNITS) -> dict[str, str]:
    """``{unit: device text}`` for every unit: one device for all, or ``unit=device`` entries."""
    text = (text or "").strip()
    if not text:
        return {u: default for u in units}
    if not re.match(r"[A-Za-z_]+\s*=", text):       # 'GPU', 'cuda,cpu', 'tensorrt:cache=DIR'
        return {u: text for u in units}
    out = {u: default for u in units}
    seen = set()
    for part in re.split(r",(?=\s*(?:%s)\s*=)" % "|".join(map(re.escape, units)), text):
        unit, sep, dev = part.partition("=")
        unit, dev = unit.strip(), dev.strip()
        if not sep or unit not in units:
            raise DeviceError(f"--device: {part.strip()!r} is not 'unit=device' "
                              f"(units: {', '.join(units)})")
        if unit in seen:
            raise DeviceError(f"--device: unit {unit!r} is given twice in {text!r}")
        if not dev:
            raise DeviceError(f"--device: no device given for {unit!r}")
        seen.add(unit)
        out[unit] = dev
    return out


# --- OpenVINO -------------------------------------------------------------------------------------

_OV_VIRTUAL = ("AUTO", "HETERO", "MULTI", "BATCH")


def openvino_devices(device: str) -> list[str]:
    """The physical devices an OpenVINO device string names (``HETERO:GPU,CPU`` -> GPU, CPU; ``AUTO`` -> [])."""
    name, _, rest = device.partition(":")
    if name not in _OV_VIRTUAL:
        if rest:
            raise DeviceError(f"OpenVINO device {device!r}: only {', '.join(_OV_VIRTUAL)} take a device list")
        return [device]
    out = []
    for d in filter(None, (s.strip() for s in rest.split(","))):
        d = re.sub(r"\(\d+\)$", "", d.lstrip("-"))          # MULTI:CPU(4), AUTO:-CPU
        out += openvino_devices(d)
    if name in ("HETERO", "MULTI") and not out:
        raise DeviceError(f"OpenVINO device {device!r} needs a device list, e.g. {name}:GPU,CPU")
    return out


def check_openvino_device(device: str, available: Sequence[str]) -> str:
    """``device`` normalised (upper case), after checking that every device it names exists here."""
    device = re.sub(r"\s+", "", device).upper()
    for d in openvino_devices(device):
        base = d.split(".", 1)[0]
        found = d in available or ("." not in d and any(a.split(".", 1)[0] == base for a in available))
        if not found:
            raise DeviceError(f"OpenVINO device {d!r} is not available on this machine "
                              f"(available: {', '.join(available) or 'none'}; also AUTO, HETERO:..., MULTI:...)")
    return device


# --- ONNX Runtime ---------------------------------------------------------------------------------

ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider", "trt": "TensorrtExecutionProvider",
                 "openvino": "OpenVINOExecutionProvider", "coreml": "CoreMLExecutionProvider",
                 "dml": "DmlExecutionProvider", "rocm": "ROCMExecutionProvider", "qnn": "QNNExecutionProvider",
                 "xnnpack": "XnnpackExecutionProvider"}
CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class OrtPlan:
    """ONNX Runtime providers for one session, in priority order, with their options.

    ``skipped`` are requested providers this machine lacks, dropped because the user listed ``cpu``
    as the fallback; ``cpu_fallback`` says whether the CPU may run nodes (or sessions) at all."""

    providers: list[str]
    options: list[dict[str, str]]
    cpu_fallback: bool
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return ",".join(p.replace("ExecutionProvider", "") for p in self.providers)


def _ort_provider(token: str, available: Sequence[str]) -> tuple[str, dict[str, str]]:
    name, *opts = [t.strip() for t in token.split(":")]
    full = ORT_PROVIDERS.get(name.lower(), name)
    if full not in ORT_PROVIDERS.values() and not full.endswith("ExecutionProvider"):
        raise DeviceError(f"ONNX Runtime provider {name!r} is unknown (use {', '.join(sorted(set(ORT_PROVIDERS)))} "
                          f"or a full name; available here: {', '.join(available)})")
    options: dict[str, str] = {}
    for o in opts:
        if full == "TensorrtExecutionProvider" and o.lower() == "fp16":
            options["trt_fp16_enable"] = "True"
        elif full == "TensorrtExecutionProvider" and o.lower().startswith("cache="):
            options.update(trt_engine_cache_enable="True", trt_engine_cache_path=o.split("=", 1)[1],
                           trt_timing_cache_enable="True")
        elif o.isdigit() and full in ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider"):
            options["device_id"] = o
        elif full == "OpenVINOExecutionProvider" and o:
            options["device_type"] = o.upper()
        else:
            raise DeviceError(f"ONNX Runtime provider {token!r}: option {o!r} is not understood "
                              "(tensorrt:fp16, tensorrt:cache=DIR, cuda:N, openvino:GPU)")
    return full, options


def plan_onnx_providers(device: str, available: Sequence[str]) -> OrtPlan:
    """Providers for ``device`` (e.g. ``tensorrt:fp16:cache=trt,cuda,cpu``), checked against ``available``."""
    tokens = [t for t in (s.strip() for s in device.split(",")) if t]
    if not tokens:
        raise DeviceError("--device: empty ONNX Runtime provider list")
    parsed = [_ort_provider(t, available) for t in tokens]
    names = [p for p, _ in parsed]
    if len(set(names)) != len(names):
        raise DeviceError(f"ONNX Runtime providers {device!r}: a provider is listed twice")
    cpu_fallback = CPU_PROVIDER in names
    if cpu_fallback and names[-1] != CPU_PROVIDER:
        raise DeviceError(f"ONNX Runtime providers {device!r}: cpu, the fallback, must come last")
    missing = [p for p in names if p not in available]
    if missing and not cpu_fallback:
        raise DeviceError(f"ONNX Runtime provider{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                          f"{'are' if len(missing) > 1 else 'is'} not available on this machine "
                          f"(available: {', '.join(available)}); add ',cpu' to fall back to the CPU")
    kept = [(p, o) for p, o in parsed if p in available]
    return OrtPlan(providers=[p for p, _ in kept], options=[o for _, o in kept], cpu_fallback=cpu_fallback,
                   skipped=missing)


# --- ExecuTorch -----------------------------------------------------------------------------------

EXECUTORCH_OTHER = ("coreml", "mps", "qnn", "vulkan", "openvino", "cuda", "metal", "arm", "mediatek")


def check_executorch_device(device: str) -> str:
    d = device.strip().lower()
    if d in ("xnnpack", "cpu"):
        return "xnnpack"
    if d in EXECUTORCH_OTHER:
        raise DeviceError(f"ExecuTorch backend {device!r} is not available here: hoi-edge lowers .pte files for "
                          f"XNNPACK only ({d} needs its own partitioner at export and a runtime built with it); "
                          "use --device xnnpack")
    raise DeviceError(f"ExecuTorch device {device!r} is unknown (use xnnpack)")


# --- PyTorch (checkpoints) ------------------------------------------------------------------------

TORCH_DEVICES = ("cpu", "cuda", "mps", "xpu")


def check_torch_device(device: str | None) -> str:
    """A PyTorch device for a checkpoint ('cpu', 'cuda', 'cuda:1'; any case; 'auto': cuda when there is one),
    checked against this machine. An artifact's device name ('GPU', 'NPU', 'HETERO:...', 'cuda,cpu',
    'detector=GPU') gets one line saying that those run exported artifacts."""
    import torch

    text = (device or "cpu").strip()
    low = text.lower()
    if low == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    base = re.split(r"[:.]", low, maxsplit=1)[0]
    if base in ("gpu", "npu") or base.upper() in _OV_VIRTUAL or "," in low or "=" in low \
            or (base in ORT_PROVIDERS and base not in TORCH_DEVICES):
        raise DeviceError(f"--device {text}: that names a device of an exported artifact (OpenVINO / ONNX Runtime "
                          "/ ExecuTorch); a PyTorch checkpoint runs on cpu or cuda[:N]. Export it first "
                          "('hoi-edge export --target openvino --out DIR'), then run --artifact DIR --device "
                          f"{text}")
    try:
        dev = torch.device(low)
    except (RuntimeError, ValueError):
        raise DeviceError(f"--device {text!r} is not a PyTorch device (cpu, cuda, cuda:N)"
                          f"{did_you_mean(base, TORCH_DEVICES)}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
            raise DeviceError(f"--device {text}: PyTorch finds no CUDA GPU on this machine (torch "
                              f"{torch.__version__}, {built}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered 0..{torch.cuda.device_count() - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"--device {text}: Apple's MPS is not available here; use --device cpu")
    elif dev.type not in TORCH_DEVICES:
        raise DeviceError(f"--device {text}: hoi-edge runs PyTorch checkpoints on cpu or cuda[:N]")
    elif dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise DeviceError(f"--device {text}: no Intel XPU is available to PyTorch here; use --device cpu")
    return str(dev)
