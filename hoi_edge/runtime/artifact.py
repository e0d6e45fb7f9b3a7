"""Load an exported artifact folder into an :class:`HOIPipeline`, backend chosen by the manifest."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from hoi_edge.core.errors import ArtifactError, VocabularyError
from hoi_edge.core.jsonio import read_json_object
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.detector import HOIPipeline, StageRunner
from hoi_edge.pipeline.end_to_end import LAYOUT as END_TO_END
from hoi_edge.pipeline.end_to_end import UNIT as END_TO_END_UNIT
from hoi_edge.runtime.manifest import TEXT_EMBEDDINGS, VOCABULARY, Manifest
from hoi_edge.targets_registry import Target, read_manifest, target_of

REBAKE_HINT = "re-run 'hoi-edge bake --artifact ... --model ... --vocab ...'"


def make_runner(manifest: Manifest, folder: Path, num_threads: int | None = None, device: str | None = None,
                throughput: bool = False, target: Target | None = None) -> StageRunner:
    """The manifest's target's runner (:mod:`hoi_edge.targets_registry`), its runtime imported only now, with
    ``device`` parsed and checked by the target (:meth:`Target.parse_devices`) for every network the artifact
    holds. ``throughput``: see :class:`hoi_edge.runtime.base.ArtifactRunner`."""
    target = target or target_of(manifest, folder)
    devices = target.parse_devices(device, unit_names=tuple(manifest.units))
    extra = {"throughput": throughput} if throughput else {}
    return target.load_runner()(folder, manifest, num_threads=num_threads, device=device, devices=devices, **extra)


def read_text_bank(folder: Path, manifest: Manifest) -> tuple[Vocabulary, np.ndarray]:
    """The vocabulary and text embeddings, checked against the manifest (fingerprint, sha256, width).

    The text bank is the part a re-bake rewrites; these checks catch a re-bake interrupted between
    its file replacements, or files copied in from another artifact.
    """
    data = read_json_object(folder / VOCABULARY, "artifact vocabulary", ArtifactError)
    vocab = Vocabulary.from_dict(data, source=str(folder / VOCABULARY))
    if vocab.fingerprint() != manifest.vocabulary_fingerprint:
        raise VocabularyError(f"{folder / VOCABULARY} does not match the vocabulary the embeddings were baked for "
                              f"(fingerprint differs from the manifest's); {REBAKE_HINT}")
    path = folder / TEXT_EMBEDDINGS
    raw = path.read_bytes()
    expected = manifest.text_embeddings_sha256
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        raise ArtifactError(f"{path} does not match the manifest (sha256 differs): the text bank was modified or a "
                            f"re-bake was interrupted; {REBAKE_HINT}")
    try:
        text = np.load(io.BytesIO(raw), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} is unreadable: {exc}") from exc
    if text.ndim != 2:
        raise ArtifactError(f"{path} has shape {list(text.shape)}; expected a (classes, embedding) matrix")
    width = pair_embedding_width(manifest)
    if width is not None and text.shape[1] != width:
        raise ArtifactError(f"{path} has shape {list(text.shape)}, but hoi_head outputs {width}-wide pair "
                            f"embeddings; {REBAKE_HINT} with the checkpoint this artifact was exported from")
    return vocab, text


def pair_embedding_width(manifest: Manifest) -> int | None:
    """E of hoi_head's (1, K*K, E) output, when the manifest records output shapes (format 2)."""
    unit = manifest.units.get("hoi_head")
    if unit is None or not unit.output_shapes or not unit.outputs:
        return None
    shape = unit.output_shapes.get(unit.outputs[0])
    return int(shape[-1]) if shape else None


def load_artifact(folder: str | Path, num_threads: int | None = None, verify: bool = True,
                  device: str | None = None, throughput: bool = False,
                  factory: type[HOIPipeline] = HOIPipeline) -> HOIPipeline:
    """Load an artifact folder. ``verify`` first checks the sha256 of every file the manifest lists
    (format 3); it reads every byte once: ~1.5-3 s for a 500 MB FP32 base artifact on one core, under
    0.1 s for the tiny one (docs/export.md, "Artifacts you can trust"), small next to compiling the networks.
    ``device``: where each unit runs (:mod:`hoi_edge.runtime.devices`; default the CPU);
    ``throughput``: compile for pipelined streams (:mod:`hoi_edge.pipeline.stream`); ``factory``: the class
    built (:class:`hoi_edge.loader.HOIDetector` passes itself)."""
    from hoi_edge.core.noise import quiet_native_stderr
    from hoi_edge.core.provenance import warn_random_init

    folder = Path(folder)
    manifest, target = read_manifest(folder)
    end_to_end = manifest.layout == END_TO_END
    missing_units = ({END_TO_END_UNIT} if end_to_end else set(EXPORT_UNITS)) - set(manifest.units)
    if missing_units:
        raise ArtifactError(f"{folder}: manifest lacks units {sorted(missing_units)}")
    if verify:
        manifest.verify_files(folder)
    vocab, text = read_text_bank(folder, manifest)
    with quiet_native_stderr():               # ExecuTorch's cpuinfo lines when its threadpool starts
        runner = make_runner(manifest, folder, num_threads, device=device, throughput=throughput, target=target)
    detector = factory(runner, manifest.spec, vocab, text, end_to_end=end_to_end)
    detector.manifest = manifest
    warn_random_init(f"artifact {folder} (exported from {manifest.source_checkpoint.get('path')})",
                     list(manifest.random_init))
    return detector
