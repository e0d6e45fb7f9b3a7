"""The artifact manifest: what an exported folder holds and how to run it, validated on load.

Layout of an artifact folder::

    manifest.json          this file's data (format, target, precision, units, pipeline spec, versions)
    detector.<ext>         export units (.xml/.bin for OpenVINO, .onnx, .pte)
    clip_image.<ext>
    hoi_head.<ext>
    text_embeddings.npy    baked, L2-normalised prompt embeddings (C, E): no text encoder on device
    vocabulary.json        the label space those embeddings encode

Format version 2 adds ``text_embeddings_sha256`` and per-unit ``output_shapes`` (both optional, so
version-1 folders still load): a re-bake interrupted half-way, or a hand-edited text bank, is then
caught on load instead of silently scoring with the wrong embeddings.

Format version 3 adds ``files`` (the sha256 of every file in the folder, checked on load and by
``hoi-edge verify``: a swapped or corrupted network is reported by name, not only when its parser
happens to fail) and ``random_init`` (which parts of the source model had random weights; loading
such an artifact warns, as loading the random default model does). Unit files must be plain file
names inside the folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hoi_edge.core.errors import ArtifactError
from hoi_edge.core.formats import check_format
from hoi_edge.core.hashing import file_sha256
from hoi_edge.core.jsonio import read_json_object
from hoi_edge.pipeline.spec import PipelineSpec

FORMAT = "hoi-edge/artifact"
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
TEXT_EMBEDDINGS = "text_embeddings.npy"
VOCABULARY = "vocabulary.json"


@dataclass
class UnitSpec:
    """One exported network: its file and the static input (and, from format 2, output) shapes."""

    file: str
    inputs: dict[str, list[int]]
    outputs: list[str]
    output_shapes: dict[str, list[int]] | None = None


@dataclass
class Manifest:
    target: str
    precision: str
    units: dict[str, UnitSpec]
    spec: PipelineSpec
    vocabulary_fingerprint: str
    source_checkpoint: dict[str, str]
    versions: dict[str, str]
    quantization: dict[str, Any] = field(default_factory=dict)
    delegation: dict[str, Any] = field(default_factory=dict)   # ExecuTorch: per network, the share XNNPACK runs
    text_embeddings_sha256: str | None = None     # absent in format-1 manifests
    files: dict[str, str] | None = None           # file name -> sha256; absent before format 3
    random_init: list[str] = field(default_factory=list)   # parts of the source model with random weights
    layout: str = "three-unit"                    # or "end-to-end": one network, image in -> triplets out
    io_contract: dict[str, Any] | None = None     # end-to-end: what the app feeds and reads (hoi_edge.pipeline.end_to_end)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path, record_files: bool = True) -> None:
        """Write ``manifest.json`` into ``folder``; ``record_files`` first hashes every file there
        (the writer of a folder that is assembled elsewhere, like ``bake``, sets ``files`` itself)."""
        if record_files:
            self.files = hash_files(folder)
        (folder / MANIFEST).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def verify_files(self, folder: str | Path) -> None:
        """Every file the manifest lists still has its recorded sha256; the first that differs is named."""
        folder = Path(folder)
        for name, expected in (self.files or {}).items():
            path = folder / check_plain_name(name, folder / MANIFEST, "file")
            if not path.is_file():
                raise ArtifactError(f"artifact {folder} is incomplete: {name} is missing")
            if file_sha256(path) != expected:
                fix = ("re-run 'hoi-edge bake --artifact ... --model ... --vocab ...'" if name in (TEXT_EMBEDDINGS, VOCABULARY)
                       else "re-export the artifact")
                raise ArtifactError(f"{path} does not match the manifest (sha256 differs): the file was modified, "
                                    f"damaged or swapped; {fix}")

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        """The manifest of ``folder``, its structure, file names and unit files checked. Readers of an artifact use
        :func:`hoi_edge.targets_registry.read_manifest`, which adds the target's own checks (known target,
        precision, companion files): the registry sits above the runtime, so this module does not consult it."""
        folder = Path(folder)
        path = folder / MANIFEST
        if not folder.is_dir():
            raise ArtifactError(f"artifact folder not found: {folder}")
        if not path.is_file():
            raise ArtifactError(f"{folder} is not a hoi-edge artifact: {MANIFEST} is missing")
        data = read_json_object(path, "artifact manifest", ArtifactError)
        check_format(data, path, FORMAT, FORMAT_VERSION, "artifact manifest", ArtifactError)
        try:
            units = {k: UnitSpec(**v) for k, v in data.pop("units").items()}
            spec = PipelineSpec.from_dict(data.pop("spec"))
            manifest = cls(units=units, spec=spec, **data)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ArtifactError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        for name in ("target", "precision"):
            if not isinstance(getattr(manifest, name), str):
                raise ArtifactError(f"{path}: '{name}' must be a name, got {getattr(manifest, name)!r}")
        if not manifest.units:
            raise ArtifactError(f"{path}: the manifest lists no networks ('units' is empty)")
        for unit, u in manifest.units.items():
            check_plain_name(u.file, path, f"unit '{unit}' file")
        manifest.check_files(folder)
        return manifest

    def check_files(self, folder: Path) -> None:
        """Every unit file and the text bank are there (the target's own companion files are checked by
        :meth:`hoi_edge.targets_registry.Target.check_artifact`)."""
        needed = [u.file for u in self.units.values()] + [TEXT_EMBEDDINGS, VOCABULARY]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise ArtifactError(f"artifact {folder} is incomplete: missing {missing}")


def check_plain_name(name: str, manifest_path: Path, what: str) -> str:
    """A file a manifest names must be a plain name inside the artifact folder: never a path out of
    it (``../x``, ``/etc/passwd``), so a crafted manifest cannot make the loader read elsewhere."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name \
            or "/" in name or "\\" in name:
        raise ArtifactError(f"{manifest_path}: {what} {name!r} must be a plain file name inside the artifact folder")
    return name


def hash_files(folder: Path) -> dict[str, str]:
    """sha256 of every regular file in ``folder`` except the manifest and hidden temp files."""
    return {p.name: file_sha256(p) for p in sorted(Path(folder).iterdir())
            if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
