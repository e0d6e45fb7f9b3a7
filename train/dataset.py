"""HICO-DET training data in the fredzzhang/hicodet JSON format, and the zero-shot split filter.

Both layouts :mod:`hoi_edge.data.hico_json` reads are accepted (the evaluator reads the same files the same way).

Each entry is one (human box, object box, HOI class). HICO-DET annotates every class of a
physical pair separately, with slightly different boxes: on the test set no two entries
share exact boxes, yet 11k entry pairs overlap with IoU >= 0.7 on both boxes. So
:func:`filter_unseen` treats entries as the same pair when both boxes overlap by
``pair_iou`` (0.7 by default; 1.0 = exact boxes only), in continuous coordinates (``w = x2 - x1``),
training's convention (:mod:`hoi_edge.core.geometry` says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.core.geometry import pairwise_iou_continuous as box_iou
from hoi_edge.data.hico_json import HicoImage, read_hico_json
from hoi_edge.pipeline.preprocess import load_image

ANNOTATION_NAMES = ("annotations.json", "instances_train2015.json", "instances_trainval.json")
IMAGE_DIR_NAMES = ("images", "train2015", "images/train2015")
DEFAULT_PAIR_IOU = 0.7


@dataclass
class Sample:
    image: np.ndarray                     # RGB uint8 (H,W,3)
    target: HicoImage


def load_annotations(path: str | Path) -> list[HicoImage]:
    """Every image of an annotation file (images without pairs included), checked entry by entry by the
    project's one HICO-JSON reader (:func:`hoi_edge.data.hico_json.read_hico_json`)."""
    return [image.as_float32() for image in read_hico_json(path, "annotation file").images]


def same_pair(ann: HicoImage, pair_iou: float = DEFAULT_PAIR_IOU) -> np.ndarray:
    """(N,N) bool: entries i and j annotate the same (human, object) pair (same object class, both boxes overlap)."""
    if pair_iou >= 1.0:
        eq_h = (ann.boxes_h[:, None] == ann.boxes_h[None]).all(-1)
        return eq_h & (ann.boxes_o[:, None] == ann.boxes_o[None]).all(-1) & (ann.object[:, None] == ann.object[None])
    return ((box_iou(ann.boxes_h, ann.boxes_h) >= pair_iou) & (box_iou(ann.boxes_o, ann.boxes_o) >= pair_iou)
            & (ann.object[:, None] == ann.object[None]))


def filter_unseen(annotations: Sequence[HicoImage], unseen_hoi_ids: Iterable[int],
                  pair_iou: float = DEFAULT_PAIR_IOU) -> list[HicoImage]:
    """GEN-VLKT/HOICLIP ``--del_unseen``: drop every pair that carries any unseen HOI label, then empty images.

    Without this, a pair labelled 'hold cup' (seen) and 'drink_with cup' (unseen) would still
    teach the model what the unseen interaction looks like.
    """
    unseen = np.asarray(sorted({int(i) for i in unseen_hoi_ids}), dtype=np.int64)
    out = []
    for ann in annotations:
        if ann.num_pairs == 0:
            continue
        bad = np.isin(ann.hoi, unseen)
        if bad.any():
            keep = ~(same_pair(ann, pair_iou) & bad[None, :]).any(1)
            ann = ann.select(keep)
        if ann.num_pairs:
            out.append(ann)
    return out


def find_data(folder: str | Path) -> tuple[Path, Path]:
    """``DIR`` -> (annotation json, images dir): ``DIR/annotations.json`` (or the only ``*.json``), images in
    ``DIR/images`` (or ``DIR/train2015``, else ``DIR`` itself)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(f"data folder not found: {root}")
    ann = next((root / n for n in ANNOTATION_NAMES if (root / n).is_file()), None)
    if ann is None:
        found = sorted(root.glob("*.json"))
        if len(found) != 1:
            raise InputFileError(f"data folder {root}: expected annotations.json or exactly one *.json, "
                                 f"found {[f.name for f in found] or 'none'}")
        ann = found[0]
    images = next((root / n for n in IMAGE_DIR_NAMES if (root / n).is_dir()), root)
    return ann, images


class HICODataset:
    """Images with at least one (seen) GT pair; ``dataset[i]`` -> :class:`Sample` (RGB image + targets).

    ``unseen`` HOI ids are removed with :func:`filter_unseen`. ``hflip`` mirrors half of the images
    (image and boxes), chosen from (seed, epoch, index) so worker processes agree; call
    :meth:`set_epoch` each epoch for a new draw.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, unseen: Iterable[int] = (),
                 hflip: bool = False, pair_iou: float = DEFAULT_PAIR_IOU, check_files: bool = True,
                 seed: int = 0, annotations: Sequence[HicoImage] | None = None) -> None:
        """``annotations``: the already loaded content of ``annotation_file`` (saves parsing it twice)."""
        self.annotation_file, self.image_dir = Path(annotation_file), Path(image_dir)
        if not self.image_dir.is_dir():
            raise InputFileError(f"image folder not found: {self.image_dir}")
        self.all_annotations = list(annotations) if annotations is not None else load_annotations(annotation_file)
        self.unseen = tuple(sorted({int(i) for i in unseen}))
        self.annotations = filter_unseen(self.all_annotations, self.unseen, pair_iou)
        if not self.annotations:
            raise InputFileError(f"annotation file {self.annotation_file}: no image has a (seen) HOI pair to train on")
        if check_files:
            missing = [a.filename for a in self.annotations if not (self.image_dir / a.filename).is_file()]
            if missing:
                raise InputFileError(f"{len(missing)} image(s) of {self.annotation_file} not found in "
                                     f"{self.image_dir}: {missing[:5]}")
        self.hflip, self.seed, self.epoch = hflip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int) -> Sample:
        ann = self.annotations[index]
        path = self.image_dir / ann.filename
        image = load_image(path)
        h, w = image.shape[:2]
        if ann.size is not None and ann.size != (w, h):
            raise InputFileError(f"image {path} is {w}x{h} but {self.annotation_file} says "
                                 f"{ann.size[0]}x{ann.size[1]}: boxes would not fit")
        if self.hflip and np.random.default_rng((self.seed, self.epoch, index)).random() < 0.5:
            return Sample(np.ascontiguousarray(image[:, ::-1]), ann.hflip(w))
        return Sample(image, ann)

    def check_vocabulary(self, hoi_object: np.ndarray) -> None:
        """Every class index exists in the model's vocabulary and belongs to the annotated object."""
        for ann in self.annotations:
            if ann.num_pairs and ann.hoi.max() >= hoi_object.shape[0]:
                raise InputFileError(f"{self.annotation_file}: {ann.filename} has HOI class {int(ann.hoi.max())}, "
                                     f"but the model's vocabulary has {hoi_object.shape[0]} classes")
            wrong = np.flatnonzero(hoi_object[ann.hoi] != ann.object)
            if wrong.size:
                i = int(wrong[0])
                raise InputFileError(
                    f"{self.annotation_file}: {ann.filename} pairs HOI class {int(ann.hoi[i])} with object "
                    f"{int(ann.object[i])}, but the model's vocabulary gives that class object "
                    f"{int(hoi_object[ann.hoi[i]])}")
