"""Builders for the validation tests: a damaged OpenVINO artifact and a GT file made from the
reference's own predictions (see :func:`write_self_groundtruth` for why)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from hoi_edge.eval import Predictions

THREADS = 2      # every reference run that the self-built GT is compared with uses this many threads


def damage_openvino_artifact(src: Path, dst: Path, units: Sequence[str] = ("hoi_head",), noise: float = 1.0,
                             seed: int = 0) -> Path:
    """Copy an OpenVINO artifact and add Gaussian noise (``noise`` x each tensor's std) to the FP32
    weight matrices of ``units`` in their ``.bin`` files, as a corrupted or badly quantized export
    would have; shape constants (integer tensors) are left alone so the model still runs."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    for unit in units:
        root = ET.parse(dst / f"{unit}.xml").getroot()
        blob = np.fromfile(dst / f"{unit}.bin", dtype=np.uint8)
        for layer in root.iter("layer"):
            data = layer.find("data")
            if layer.get("type") != "Const" or data is None or data.get("element_type") != "f32":
                continue
            shape = [int(s) for s in data.get("shape", "").split(",") if s.strip()]
            if len(shape) < 2:
                continue
            start, size = int(data.get("offset")), int(data.get("size"))
            w = blob[start:start + size].view(np.float32)
            w += (noise * (w.std() + 1e-6) * rng.standard_normal(w.shape)).astype(np.float32)
        blob.tofile(dst / f"{unit}.bin")
    from hoi_edge.runtime.manifest import Manifest

    Manifest.read(dst).write(dst)        # a bad export, not tampering: the manifest hashes the damaged files
    return dst


def write_self_groundtruth(reference: Predictions, names: Sequence[str], path: Path, per_image: int = 5,
                           object_of_hoi: np.ndarray | None = None) -> Path:
    """A HICO-format GT whose pairs are the reference's own best detections.

    The tiny random model scores ~0 mAP on the real HICO labels, which would make every mAP
    drop trivially 0. Here every reference detection scoring at least ``t`` becomes a GT pair,
    ``t`` being the lowest ``per_image``-th best score over the images: one global cut, so for
    every class all the reference's detections above the cut are true positives ranked above
    all the others, and the reference scores 100 mAP. An artifact that reproduces the
    reference also scores ~100; a damaged one ranks other triplets first and scores lower.
    """
    cut = min(np.sort(reference.score[reference.image == i])[::-1][min(per_image, np.sum(reference.image == i)) - 1]
              for i in range(len(names)))
    images = []
    for i, name in enumerate(names):
        rows = np.flatnonzero((reference.image == i) & (reference.score >= cut))
        hoi = reference.hoi[rows].tolist()
        images.append({
            "file_name": name, "hoi": hoi, "boxes_h": reference.boxes_h[rows].tolist(),
            "boxes_o": reference.boxes_o[rows].tolist(),
            "object": [int(object_of_hoi[h]) for h in hoi] if object_of_hoi is not None else [0] * len(hoi),
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"_note": "built from the reference's own top predictions (tests only)",
                                "images": images}))
    return path
