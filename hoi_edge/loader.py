"""Open a detector from what the user names: a checkpoint, 'default', or an artifact folder.

:class:`HOIDetector` is the public class (``from hoi_edge import HOIDetector``): the NumPy pipeline
(:class:`hoi_edge.pipeline.detector.HOIPipeline`) plus the constructors that open files. They live here,
above the runtime they load, so the pipeline never refers to the layer above it. The runtime modules are
imported inside the constructors, so importing this module (as the CLI does) loads neither torch nor any
runtime.
"""

from __future__ import annotations

from pathlib import Path

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.detector import HOIPipeline


class HOIDetector(HOIPipeline):
    """``predict(image) -> list[HOIDetection]`` for a PyTorch checkpoint or an exported artifact."""

    @classmethod
    def from_checkpoint(cls, path: str | Path, vocabulary: str | Path | Vocabulary | None = None,
                        device: str = "cpu") -> "HOIDetector":
        """Full-precision PyTorch model from a hoi-edge checkpoint (or 'default', the default model as in every
        command); ``vocabulary`` re-targets the classes. A model with random-init parts says so on stderr."""
        from hoi_edge.runtime.torch_runner import detector_from_checkpoint

        return detector_from_checkpoint(path, vocabulary=vocabulary, device=device, factory=cls)

    @classmethod
    def from_artifact(cls, path: str | Path, device: str | None = None, num_threads: int | None = None,
                      throughput: bool = False, verify: bool = True) -> "HOIDetector":
        """An exported artifact folder (OpenVINO, ONNX Runtime or ExecuTorch), backend chosen by its manifest.

        ``device``: one device for all units or ``detector=GPU,clip_image=NPU,hoi_head=CPU`` (OpenVINO device
        strings, ONNX Runtime providers in priority order, ExecuTorch ``xnnpack``; see
        :mod:`hoi_edge.runtime.devices`); ``throughput``: compile for pipelined streams
        (:mod:`hoi_edge.pipeline.stream`); ``verify``: check every file's sha256 first."""
        from hoi_edge.runtime.artifact import load_artifact

        return load_artifact(path, num_threads=num_threads, verify=verify, device=device, throughput=throughput,
                             factory=cls)


def open_detector(model: str | None = None, artifact: str | Path | None = None,
                  vocabulary: str | Path | None = None, device: str | None = None, clip_weights: str | None = None,
                  detector_weights: str | None = None, throughput: bool = False) -> HOIDetector:
    """The CLI's single entry point: a checkpoint (``model``, None = 'default') or an artifact folder, never both."""
    if artifact is not None:
        if model is not None:
            raise InputFileError(f"--model {model} and --artifact {artifact} name two models; give one of them "
                                 "(an artifact already holds its networks)")
        if vocabulary is not None:
            raise InputFileError("--vocab cannot re-target an artifact (its text embeddings are baked in); re-bake it "
                                 f"with 'hoi-edge bake --artifact {artifact} --model CHECKPOINT --vocab {vocabulary}'")
        return HOIDetector.from_artifact(artifact, device=device, throughput=throughput)
    from hoi_edge.weights.defaults import resolve_checkpoint  # 'default' means the same model in every command

    path = resolve_checkpoint(model, clip_weights, detector_weights)
    return HOIDetector.from_checkpoint(path, vocabulary=vocabulary, device=device or "cpu")
