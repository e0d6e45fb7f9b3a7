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
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hoi_edge.errors import ArtifactError
from hoi_edge.jsonio import read_json_object
from hoi_edge.pipeline import PipelineSpec

FORMAT = "hoi-edge/artifact"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
TEXT_EMBEDDINGS = "text_embeddings.npy"
VOCABULARY = "vocabulary.json"
TARGET_SUFFIX = {"openvino": ".xml", "onnx": ".onnx", "executorch": ".pte"}
#: Precisions each target can export (the targets' own PRECISIONS are these tuples).
TARGET_PRECISIONS = {"openvino": ("fp32", "fp16", "int8"), "onnx": ("fp32", "int8"), "executorch": ("fp32", "int8")}
PRECISIONS = tuple(dict.fromkeys(p for ps in TARGET_PRECISIONS.values() for p in ps))


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
    text_embeddings_sha256: str | None = None     # absent in format-1 manifests
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def read(cls, folder: str | Path) -> "Manifest":
        folder = Path(folder)
        path = folder / MANIFEST
        if not folder.is_dir():
            raise ArtifactError(f"artifact folder not found: {folder}")
        if not path.is_file():
            raise ArtifactError(f"{folder} is not a hoi-edge artifact: {MANIFEST} is missing")
        data = read_json_object(path, "artifact manifest", ArtifactError)
        if data.get("format") != FORMAT:
            raise ArtifactError(f"{path}: not a hoi-edge artifact manifest (format {data.get('format')!r})")
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ArtifactError(f"{path}: format version {data['format_version']} is newer than this hoi-edge")
        try:
            units = {k: UnitSpec(**v) for k, v in data.pop("units").items()}
            spec = PipelineSpec.from_dict(data.pop("spec"))
            manifest = cls(units=units, spec=spec, **data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"{path}: malformed manifest ({exc})") from exc
        manifest.check_values(path)
        manifest.check_files(folder)
        return manifest

    def check_values(self, path: Path) -> None:
        """Target and precision must be ones this hoi-edge can run (a typo would otherwise fail much later)."""
        if self.target not in TARGET_SUFFIX:
            raise ArtifactError(f"{path}: unknown target {self.target!r} (expected one of {', '.join(TARGET_SUFFIX)})")
        if self.precision not in PRECISIONS:
            raise ArtifactError(f"{path}: unknown precision {self.precision!r} "
                                f"(expected one of {', '.join(PRECISIONS)})")
        allowed = TARGET_PRECISIONS[self.target]
        if self.precision not in allowed:
            raise ArtifactError(f"{path}: precision {self.precision!r} is not one of target '{self.target}' "
                                f"({', '.join(allowed)})")

    def check_files(self, folder: Path) -> None:
        if self.target not in TARGET_SUFFIX:
            raise ArtifactError(f"{folder}: unknown target '{self.target}' in manifest")
        needed = [u.file for u in self.units.values()] + [TEXT_EMBEDDINGS, VOCABULARY]
        if self.target == "openvino":
            needed += [Path(u.file).with_suffix(".bin").name for u in self.units.values()]
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing:
            raise ArtifactError(f"artifact {folder} is incomplete: missing {missing}")
