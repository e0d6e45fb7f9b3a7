"""Calibration data: real images run through the full-precision pipeline, recording the exact
inputs each export unit sees (so the HOI head is calibrated on real instance selections)."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hoi_edge.core.errors import InputFileError
from hoi_edge.core.units import EXPORT_UNITS
from hoi_edge.data.hico_json import read_hico_json
from hoi_edge.data.sources import list_image_files
from hoi_edge.pipeline.detector import HOIPipeline
from hoi_edge.pipeline.preprocess import load_image

UnitSamples = dict[str, list[tuple[np.ndarray, ...]]]


@dataclass
class CalibrationConfig:
    source: Path                  # a folder of images, or a HICO-format annotation json (images beside it)
    max_images: int = 300         # NNCF's default subset size
    seed: int = 0
    images_dir: Path | None = None
    role: str = "calibration"     # named in errors: "calibration" (--calib) or "validation" (--val)


def list_images(cfg: CalibrationConfig) -> list[Path]:
    """Image paths from a folder (recursively) or a HICO-format annotation file; shuffled, capped.

    A folder is listed by :func:`hoi_edge.data.sources.list_image_files` and a json read by
    :func:`hoi_edge.data.hico_json.read_hico_json`, as ``hoi-edge validate --data`` and ``eval`` do, so the same
    source selects the same images; listed images must exist, and the first missing ones are named.
    """
    src = Path(cfg.source)
    if src.is_dir():
        paths = list_image_files(src)
    elif src.is_file() and src.suffix.lower() == ".json":
        base = Path(cfg.images_dir) if cfg.images_dir else src.parent
        paths = [base / n for n in read_hico_json(src, f"{cfg.role} annotation file").filenames]
    elif src.exists():
        raise InputFileError(f"{cfg.role} source {src} is neither a folder of images nor a HICO .json")
    else:
        raise InputFileError(f"{cfg.role} source not found: {src} (give a folder of images or a HICO json)")
    if not paths:
        raise InputFileError(f"{cfg.role} source {src} holds no images")
    random.Random(cfg.seed).shuffle(paths)
    if len(paths) < cfg.max_images:       # say so: a 300-image subset silently made of 14 would mislead
        print(f"hoi-edge: {cfg.role}: {src} holds {len(paths)} images, fewer than the {cfg.max_images} asked for "
              f"(--calib-size); using all {len(paths)}", file=sys.stderr)
    else:
        print(f"hoi-edge: {cfg.role}: {cfg.max_images} of the {len(paths)} images in {src}", file=sys.stderr)
    paths = paths[: cfg.max_images]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        hint = "" if cfg.images_dir or cfg.role != "calibration" else \
            " (pass --calib-images-dir DIR if the images are elsewhere)"
        raise InputFileError(f"{len(missing)} of the {len(paths)} {cfg.role} images chosen from {src} are missing: "
                             f"{', '.join(str(p) for p in missing[:3])}{' ...' if len(missing) > 3 else ''}{hint}")
    return paths


class RecordingRunner:
    """Wraps a StageRunner and keeps every unit's inputs."""

    def __init__(self, runner) -> None:
        self.runner, self.name = runner, runner.name
        self.samples: UnitSamples = {unit: [] for unit in EXPORT_UNITS}

    def detector(self, images):
        self.samples["detector"].append((images,))
        return self.runner.detector(images)

    def clip_image(self, images):
        self.samples["clip_image"].append((images,))
        return self.runner.clip_image(images)

    def hoi_head(self, *inputs):
        self.samples["hoi_head"].append(tuple(inputs))
        return self.runner.hoi_head(*inputs)


def collect_unit_inputs(reference: HOIPipeline, images: list[Path], desc: str = "calibration") -> UnitSamples:
    """Run the reference over ``images`` and return the recorded per-unit inputs."""
    recorder = RecordingRunner(reference.runner)
    original = reference.runner
    reference.runner = recorder
    try:
        for path in tqdm(images, desc=desc, unit="img", leave=False):
            reference.run(load_image(path))
    finally:
        reference.runner = original
    return recorder.samples
