"""HICO-DET training data in the fredzzhang/hicodet JSON format, and the zero-shot split filter.

Two layouts are read (per-image fields are the same):

* ``{"annotation": [{boxes_h, boxes_o, hoi, object, verb}, ...], "filenames": [...], "size": [[w, h], ...]}``
  (fredzzhang/hicodet ``instances_*.json``, and ``samples/labels/photos_hoi.json``);
* ``{"images": [{"file_name": ..., "size_wh": [w, h], boxes_h, ...}, ...]}``
  (``real_test_images/annotations.json``).

Each entry is one (human box, object box, HOI class). HICO-DET annotates every class of a
physical pair separately, with slightly different boxes: on the test set no two entries
share exact boxes, yet 11k entry pairs overlap with IoU >= 0.7 on both boxes. So
:func:`filter_unseen` treats entries as the same pair when both boxes overlap by
``pair_iou`` (0.7 by default; 1.0 = exact boxes only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from hoi_edge.errors import InputFileError
from hoi_edge.jsonio import read_json_object
from hoi_edge.preprocess import load_image

ANNOTATION_NAMES = ("annotations.json", "instances_train2015.json", "instances_trainval.json")
IMAGE_DIR_NAMES = ("images", "train2015", "images/train2015")
DEFAULT_PAIR_IOU = 0.7


@dataclass(frozen=True, eq=False)
class ImageAnnotation:
    """The GT pairs of one image; row ``i`` of every array is entry ``i``. Boxes: x1,y1,x2,y2 pixels."""

    filename: str
    size: tuple[int, int] | None          # (width, height) when the file states it
    boxes_h: np.ndarray                   # (N,4) float32
    boxes_o: np.ndarray                   # (N,4) float32
    hoi: np.ndarray                       # (N,) int64, index into the HOI vocabulary
    object: np.ndarray                    # (N,) int64, vocabulary object index
    verb: np.ndarray                      # (N,) int64, -1 when the file has no verbs

    @property
    def num_pairs(self) -> int:
        return int(self.hoi.shape[0])

    def select(self, keep: np.ndarray) -> "ImageAnnotation":
        return replace(self, boxes_h=self.boxes_h[keep], boxes_o=self.boxes_o[keep], hoi=self.hoi[keep],
                       object=self.object[keep], verb=self.verb[keep])

    def hflip(self, width: int) -> "ImageAnnotation":
        """Boxes mirrored for a horizontally flipped image of ``width`` pixels."""
        def flip(b: np.ndarray) -> np.ndarray:
            return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1).astype(np.float32)
        return replace(self, boxes_h=flip(self.boxes_h), boxes_o=flip(self.boxes_o))


@dataclass
class Sample:
    image: np.ndarray                     # RGB uint8 (H,W,3)
    target: ImageAnnotation


def load_annotations(path: str | Path) -> list[ImageAnnotation]:
    """Every image of an annotation file (images without pairs included), validated entry by entry."""
    p = Path(path)
    data = read_json_object(p, "annotation file")
    key, entries, names, sizes = _layout(p, data)
    if len(set(names)) != len(names):
        raise InputFileError(f"annotation file {p}: duplicate image file names")
    return [_image(p, f"{key}[{i}] ({name})", name, size, entry)
            for i, (name, size, entry) in enumerate(zip(names, sizes, entries))]


def _layout(p: Path, data: dict[str, Any]) -> tuple[str, list[Any], list[str], list[Any]]:
    """(key of the per-image list, per-image entries, file names, sizes or None) of either layout."""
    if isinstance(data.get("annotation"), list) and isinstance(data.get("filenames"), list):
        key, entries, names = "annotation", data["annotation"], data["filenames"]
        if len(entries) != len(names):
            raise InputFileError(f"annotation file {p}: {len(entries)} annotations but {len(names)} filenames")
        sizes = data.get("size") or [None] * len(names)
        if not isinstance(sizes, list) or len(sizes) != len(names):
            raise InputFileError(f"annotation file {p}: 'size' must list one [width, height] per filename")
    elif isinstance(data.get("images"), list):
        key, entries = "images", data["images"]
        if not all(isinstance(e, dict) for e in entries):
            raise InputFileError(f"annotation file {p}: every item of 'images' must be an object")
        names = [e.get("file_name") for e in entries]
        sizes = [e.get("size_wh") for e in entries]
    else:
        raise InputFileError(f"annotation file {p}: expected 'annotation' + 'filenames' (fredzzhang/hicodet) "
                             "or an 'images' list")
    bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n]
    if bad:
        raise InputFileError(f"annotation file {p}: image {bad[0]} has no file name")
    return key, entries, names, sizes


def _image(p: Path, where: str, name: str, size: Any, entry: Any) -> ImageAnnotation:
    def fail(what: str) -> InputFileError:
        return InputFileError(f"annotation file {p}: {where} {what}")

    if not isinstance(entry, dict):
        raise fail("must be an object")
    missing = [k for k in ("boxes_h", "boxes_o", "hoi", "object") if k not in entry]
    if missing:
        raise fail(f"lacks {', '.join(missing)}")
    n = len(entry["hoi"]) if isinstance(entry["hoi"], list) else -1
    verb = entry.get("verb", [-1] * max(n, 0))
    fields = {"boxes_h": entry["boxes_h"], "boxes_o": entry["boxes_o"], "hoi": entry["hoi"],
              "object": entry["object"], "verb": verb}
    lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in fields.items()}
    if n < 0 or set(lengths.values()) != {n}:
        raise fail(f"fields must be lists of equal length, got {lengths}")
    arrays = {}
    for key in ("hoi", "object", "verb"):
        if not all(type(v) is int for v in fields[key]):
            raise fail(f"{key} must hold integers")
        arrays[key] = np.asarray(fields[key], dtype=np.int64).reshape(n)
    for key in ("boxes_h", "boxes_o"):
        for box in fields[key]:
            ok = isinstance(box, list) and len(box) == 4 and all(type(v) in (int, float) for v in box)
            if not ok or not (box[0] <= box[2] and box[1] <= box[3]):
                raise fail(f"{key}: {box!r} is not a box x1,y1,x2,y2 with x1 <= x2, y1 <= y2")
        arrays[key] = np.asarray(fields[key], dtype=np.float32).reshape(n, 4)
    if (arrays["hoi"] < 0).any() or (arrays["object"] < 0).any():
        raise fail("has negative class indices")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)):
            raise fail(f"size {size!r} is not [width, height]")
        size = (size[0], size[1])
    return ImageAnnotation(filename=name, size=size, **arrays)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,4) x (M,4) xyxy -> (N,M) IoU."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def same_pair(ann: ImageAnnotation, pair_iou: float = DEFAULT_PAIR_IOU) -> np.ndarray:
    """(N,N) bool: entries i and j annotate the same (human, object) pair (same object class, both boxes overlap)."""
    if pair_iou >= 1.0:
        eq_h = (ann.boxes_h[:, None] == ann.boxes_h[None]).all(-1)
        return eq_h & (ann.boxes_o[:, None] == ann.boxes_o[None]).all(-1) & (ann.object[:, None] == ann.object[None])
    return ((box_iou(ann.boxes_h, ann.boxes_h) >= pair_iou) & (box_iou(ann.boxes_o, ann.boxes_o) >= pair_iou)
            & (ann.object[:, None] == ann.object[None]))


def filter_unseen(annotations: Sequence[ImageAnnotation], unseen_hoi_ids: Iterable[int],
                  pair_iou: float = DEFAULT_PAIR_IOU) -> list[ImageAnnotation]:
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
                 seed: int = 0, annotations: Sequence[ImageAnnotation] | None = None) -> None:
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
