"""Test exports served from the user cache when nothing they depend on changed.

ExecuTorch lowering and NNCF quantization take minutes; most runs of the suite change nothing an export
depends on. :func:`export_cached` keys an export by everything that can change its result — the source of
every module an export runs (``hoi_edge/``, ``compress/``, ``targets/``), the versions of the packages that
export and run artifacts, the checkpoint's bytes, the export options and the calibration images, and the CPU
ISA — and keeps the artifact under ``$HOI_EDGE_HOME/test-exports/<key>/``. A hit is verified against its own
manifest's sha256s and copied to where the test asked for it, so a test that edits its artifact cannot
damage the cache. Any source change is a miss, so a change to the export path is always exported for real.
``HOI_EDGE_TEST_CACHE=0`` turns the cache off.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata as md
import json
import os
import shutil
from pathlib import Path
from typing import Any

from hoi_edge.core.atomic import publish
from hoi_edge.core.cpu import cpu_info
from hoi_edge.core.errors import ArtifactError
from hoi_edge.core.hashing import file_sha256
from hoi_edge.core.paths import cache_dir
from hoi_edge.runtime.manifest import Manifest
from targets.export import ExportConfig, export_artifact

REPO = Path(__file__).resolve().parents[1]
SOURCE_PACKAGES = ("hoi_edge", "compress", "targets")
PACKAGES = ("torch", "executorch", "torchao", "openvino", "nncf", "onnx", "onnxscript", "onnxruntime", "numpy",
            "open_clip_torch", "opencv-python-headless")


@functools.lru_cache(maxsize=1)
def sources_digest() -> str:
    """sha256 over every source file an export may run, and the installed versions of its packages."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in PACKAGES:
        try:
            digest.update(f"{name}=={md.version(name)}\0".encode())
        except md.PackageNotFoundError:
            digest.update(f"{name} missing\0".encode())
    digest.update(cpu_info().isa_label().encode())
    return digest.hexdigest()


def _describe(value: Any) -> Any:
    """A JSON-able description of an export option: paths by content, folders by their sorted files."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _describe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path) or (isinstance(value, str) and os.path.sep in value and Path(value).exists()):
        path = Path(value)
        if path.is_file():
            return file_sha256(path)
        if path.is_dir():
            return {p.name: file_sha256(p) for p in sorted(path.iterdir()) if p.is_file()}
        return str(path)
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def export_key(cfg: ExportConfig) -> str:
    options = _describe(dataclasses.replace(cfg, out=Path("."), overwrite=False))
    text = json.dumps({"sources": sources_digest(), "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def export_cached(cfg: ExportConfig, progress: bool = False) -> Path:
    """``export_artifact(cfg)``, or a verified copy of the same export made earlier on this machine."""
    if os.environ.get("HOI_EDGE_TEST_CACHE", "1") == "0":
        return export_artifact(cfg, progress=progress)
    cached = cache_dir() / "test-exports" / export_key(cfg)
    if cached.is_dir():
        try:
            Manifest.read(cached).verify_files(cached)
        except ArtifactError:
            shutil.rmtree(cached, ignore_errors=True)          # damaged: export again below
        else:
            out = Path(cfg.out)
            if out.exists() and cfg.overwrite:
                shutil.rmtree(out)
            shutil.copytree(cached, out)
            return out
    made = export_artifact(cfg, progress=progress)
    staging = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(made, staging)
    try:
        publish(staging, cached)
    except OSError:                       # another worker cached the same export first
        shutil.rmtree(staging, ignore_errors=True)
    return made
