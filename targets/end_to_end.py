"""``export --end-to-end``: the one network of an end-to-end artifact (:mod:`hoi_edge.model.end_to_end`),
its export contract and its calibration inputs. Each target's ``export_unit`` exports it like any unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hoi_edge.model.end_to_end import INPUTS, OUTPUTS, EndToEnd
from hoi_edge.pipeline.end_to_end import LAYOUT, UNIT, io_contract, network_pixels
from hoi_edge.pipeline.postprocess import LabelMap
from hoi_edge.pipeline.preprocess import load_image
from hoi_edge.pipeline.spec import PipelineSpec
from targets.contract import UnitContract


def build_end_to_end(model, spec: PipelineSpec, text: np.ndarray) -> EndToEnd:
    """The end-to-end network of a CLIP4HOI model with the baked text bank ``text`` (its vocabulary's);
    the detector is the export copy (folded batch norms) the three-unit export uses."""
    labels = LabelMap.build(spec.detector_classes, model.vocab)
    return EndToEnd(model.export_unit("detector"), model.export_unit("clip_image"), model.export_unit("hoi_head"),
                    spec, labels, text, model.vocab.hoi_object).eval()


def end_to_end_contract(spec: PipelineSpec) -> UnitContract:
    s = spec.detector_size
    return UnitContract(UNIT, {"image": (1, 3, s, s), "image_size": (1, 2)}, OUTPUTS)


def example_inputs(spec: PipelineSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """A tracing example: a mid-grey 4:3 image (every path live: content and padding)."""
    s = spec.detector_size
    image = torch.full((1, 3, s, s), 128.0)
    return image, torch.tensor([[3.0 * s / 4.0, float(s)]])


def calibration_inputs(images: list[Path], spec: PipelineSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """The network's inputs for each calibration image, resized as an app does."""
    return [network_pixels(load_image(p), spec.detector_size, spec.detector_resize) for p in images]


def manifest_fields(spec: PipelineSpec) -> dict:
    """What an end-to-end manifest records beyond the three-unit one: its layout and the app's I/O contract."""
    return {"layout": LAYOUT, "io_contract": {"input_names": list(INPUTS), **io_contract(spec.detector_resize)}}


def rebake_network(tmp_dir: Path, manifest, checkpoint: Path, vocab, embeddings: np.ndarray) -> list[str]:
    """``hoi-edge bake`` on an end-to-end artifact: the vocabulary is a constant of its one network, so the network
    is re-exported (same target and precision) with the new text bank and label map into ``tmp_dir``.
    Returns the file names written (the caller renames them into place). INT8 would need calibration
    images, which bake does not take: re-export with ``--end-to-end --vocab`` instead."""
    from hoi_edge.core.errors import ArtifactError
    from hoi_edge.targets_registry import get_target
    from hoi_edge.weights.checkpoint import load_model

    if manifest.precision == "int8":
        raise ArtifactError("an INT8 end-to-end artifact holds its vocabulary inside the quantized network; "
                            "re-baking it needs calibration images: re-export with "
                            "'hoi-edge export --end-to-end --int8 --calib DIR --vocab VOCAB'")
    target = get_target(manifest.target)
    unit = manifest.units[UNIT]
    model = load_model(checkpoint, vocabulary=vocab)
    net = build_end_to_end(model, manifest.spec, embeddings)
    contract = end_to_end_contract(manifest.spec)
    target.load_exporter().export_unit(net, contract, example_inputs(manifest.spec), tmp_dir / unit.file,
                                       manifest.precision)
    return [unit.file] + [Path(unit.file).with_suffix(s).name for s in target.companion_suffixes]
