"""What gets measured: the PyTorch reference checkpoint and exported artifact folders, described
without loading any network (so a bad path fails before minutes of inference)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from hoi_edge.core.errors import InputFileError, WeightsError
from hoi_edge.validate.latency import ARTIFACT_DEVICE

REFERENCE = "reference"
ARTIFACT = "artifact"


@dataclass(frozen=True)
class BackendSpec:
    """One model to run: ``label`` (e.g. ``openvino/int8``) names it in every table and plot."""

    kind: str                 # REFERENCE | ARTIFACT
    path: Path
    label: str
    target: str               # 'pytorch' for the reference, else the artifact's manifest target
    precision: str
    device: str = "cpu"
    size_bytes: int = 0
    vocabulary_fingerprint: str | None = None
    source_sha256: str | None = None

    @property
    def is_reference(self) -> bool:
        return self.kind == REFERENCE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BackendSpec":
        return cls(**{**data, "path": Path(data["path"])})


def reference_spec(checkpoint: str | Path, device: str = "cpu") -> BackendSpec:
    """The full-precision PyTorch model; its size on disk is the checkpoint file's."""
    path = Path(checkpoint)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    return BackendSpec(kind=REFERENCE, path=path, label="pytorch/fp32", target="pytorch", precision="fp32",
                       device=device, size_bytes=path.stat().st_size)


def artifact_spec(folder: str | Path, device: str | None = None) -> BackendSpec:
    """An exported artifact; the manifest is read and its files checked here, before any run, and so is
    ``device`` (:meth:`hoi_edge.targets_registry.Target.parse_devices`: a device this machine lacks fails now,
    in one line)."""
    from hoi_edge.targets_registry import read_manifest

    path = Path(folder)
    manifest, target = read_manifest(path)
    if device:
        target.parse_devices(device, unit_names=tuple(manifest.units))
    return BackendSpec(kind=ARTIFACT, path=path, label=f"{manifest.target}/{manifest.precision}",
                       target=manifest.target, precision=manifest.precision, device=device or ARTIFACT_DEVICE,
                       size_bytes=folder_size(path), vocabulary_fingerprint=manifest.vocabulary_fingerprint,
                       source_sha256=manifest.source_checkpoint.get("sha256"))


def folder_size(path: Path) -> int:
    """Bytes of every regular file below ``path``: what has to be copied to the device."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def unique_labels(specs: Sequence[BackendSpec]) -> list[BackendSpec]:
    """Two artifacts with the same target/precision get their folder name appended."""
    counts: dict[str, int] = {}
    for s in specs:
        counts[s.label] = counts.get(s.label, 0) + 1
    out, used = [], set()
    for s in specs:
        label = s.label if counts[s.label] == 1 else f"{s.label} [{s.path.name}]"
        n = 2
        while label in used:
            label, n = f"{s.label} [{s.path.name}#{n}]", n + 1
        used.add(label)
        out.append(replace(s, label=label))
    return out


@dataclass
class BackendSelection:
    """What a benchmark measures and how: the images, the PyTorch reference and the artifacts, one thread count
    for all, and where the reference and the artifacts run. :class:`hoi_edge.validate.benchmarking.BenchmarkConfig`
    (latency) and :class:`hoi_edge.validate.throughput.ThroughputConfig` (streams) extend it."""

    images: Path
    reference: Path | None = None
    artifacts: Sequence[Path] = ()
    warmup: int = 3
    threads: int | None = None
    device: str = "cpu"                  # the reference's; CPU by default, so ratios compare like with like
    artifact_device: str | None = None   # --device: where the artifacts run (Target.parse_devices)
    progress: bool = True

    def resolve(self) -> "SelectedBackends":
        """The dataset, resolved device and threads, and every backend's spec (files and devices checked now,
        before anything runs)."""
        from hoi_edge.validate.dataset import load_dataset
        from hoi_edge.validate.errors import ValidationError

        if self.reference is None and not self.artifacts:
            raise ValidationError("nothing to benchmark: give --model CKPT and/or artifact folders")
        dataset = load_dataset(self.images)
        device, threads = resolve_device(self.device), resolve_threads(self.threads)
        specs = [reference_spec(self.reference, device)] if self.reference is not None else []
        specs = unique_labels(specs + [artifact_spec(a, self.artifact_device) for a in self.artifacts])
        return SelectedBackends(dataset=dataset, device=device, threads=threads, specs=specs)


@dataclass
class SelectedBackends:
    dataset: Any                         # hoi_edge.validate.dataset.Dataset
    device: str
    threads: int
    specs: list[BackendSpec]


def resolve_device(device: str = "auto") -> str:
    """'auto' means CUDA when PyTorch sees a GPU, else CPU (only the reference can use a GPU)."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputFileError(f"unknown device {device!r} (use auto, cpu or cuda)")
    return device


def resolve_threads(threads: int | None) -> int:
    """One fixed thread count for every backend, default: the CPUs this process may use.

    Each runtime's own default differs (physical vs logical cores, inter-op pools); a fixed
    count is what makes their latencies comparable."""
    if threads is not None:
        if threads < 1:
            raise InputFileError(f"--threads must be at least 1, got {threads}")
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def slug(label: str) -> str:
    """A file-name-safe form of a backend label ('openvino/int8 [x]' -> 'openvino-int8-x')."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")


def broken_spec(folder: str | Path) -> BackendSpec:
    """A placeholder for an artifact whose manifest could not be read: it is reported as failed."""
    path = Path(folder)
    return BackendSpec(kind=ARTIFACT, path=path, label=f"broken [{path.name}]", target="?", precision="?",
                       device="cpu", size_bytes=folder_size(path) if path.is_dir() else 0)
