"""Ground-truth HOI pairs as flat NumPy arrays, loaded from the fredzzhang/hicodet JSON format.

The file is read by :func:`hoi_edge.data.hico_json.read_hico_json` (either layout it describes; training,
calibration and validation read the same files through it); this module adds the evaluator's checks:
class indices within the vocabulary, each class belonging to one object, the rare/non-rare lists.

Every annotated (human, object, HOI) entry is one GT instance. Images with no pairs are
kept: detections on them still count (as false positives). Flat arrays (one row per
pair) let the matcher group pairs by (class, image) with a single sort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.hico_json import HicoFile, read_hico_json

#: Number of HOI classes of HICO-DET; the default when a GT file has no ``correspondence``.
HICO_NUM_CLASSES = 600

@dataclass(frozen=True, eq=False)
class GroundTruth:
    """All GT pairs of a test set; row ``i`` of every array describes pair ``i``.

    ``class_object[c]`` is the object index of HOI class ``c`` (-1 if unknown); the
    Known-Object setting needs it. ``rare`` / ``non_rare`` are class index lists when
    the file provides them.
    """

    filenames: tuple[str, ...]
    num_classes: int
    class_object: np.ndarray
    image: np.ndarray
    hoi: np.ndarray
    object: np.ndarray
    boxes_h: np.ndarray
    boxes_o: np.ndarray
    rare: tuple[int, ...] | None = None
    non_rare: tuple[int, ...] | None = None
    source: str = "<memory>"
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        for name in ("image", "hoi", "object"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"GroundTruth.{name} must have shape ({n},)")
        for name in ("boxes_h", "boxes_o"):
            if getattr(self, name).shape != (n, 4):
                raise ValueError(f"GroundTruth.{name} must have shape ({n}, 4)")
        if self.class_object.shape != (self.num_classes,):
            raise ValueError(f"GroundTruth.class_object must have shape ({self.num_classes},)")
        if n and (self.image.min() < 0 or self.image.max() >= len(self.filenames)):
            raise ValueError("GroundTruth.image has indices outside filenames")
        if n and (self.hoi.min() < 0 or self.hoi.max() >= self.num_classes):
            raise ValueError("GroundTruth.hoi has indices outside the vocabulary")
        self._index.update({name: i for i, name in enumerate(self.filenames)})
        if len(self._index) != len(self.filenames):
            raise ValueError("GroundTruth.filenames has duplicate names")

    @classmethod
    def from_arrays(
        cls,
        filenames: Sequence[str],
        num_classes: int,
        image: Any,
        hoi: Any,
        boxes_h: Any,
        boxes_o: Any,
        object: Any = None,  # noqa: A002 - mirrors the JSON field name
        class_object: Any = None,
        rare: Sequence[int] | None = None,
        non_rare: Sequence[int] | None = None,
        source: str = "<memory>",
    ) -> "GroundTruth":
        """Build from array-likes (tests, in-memory data).

        Pair objects default to ``class_object[hoi]``; without ``class_object`` the
        class -> object table is learnt from ``object`` (or left at -1).
        """
        hoi_arr = np.asarray(hoi, dtype=np.int64).reshape(-1)
        if class_object is None:
            class_obj = np.full(num_classes, -1, dtype=np.int64)
            if object is not None:
                class_obj[hoi_arr] = np.asarray(object, dtype=np.int64).reshape(-1)
        else:
            class_obj = np.asarray(class_object, dtype=np.int64).reshape(-1)
        obj = class_obj[hoi_arr] if object is None else np.asarray(object, dtype=np.int64).reshape(-1)
        return cls(
            filenames=tuple(filenames),
            num_classes=int(num_classes),
            class_object=class_obj,
            image=np.asarray(image, dtype=np.int64).reshape(-1),
            hoi=hoi_arr,
            object=obj,
            boxes_h=np.asarray(boxes_h, dtype=np.float64).reshape(-1, 4),
            boxes_o=np.asarray(boxes_o, dtype=np.float64).reshape(-1, 4),
            rare=None if rare is None else tuple(int(i) for i in rare),
            non_rare=None if non_rare is None else tuple(int(i) for i in non_rare),
            source=source,
        )

    def __repr__(self) -> str:
        return (
            f"GroundTruth(source={self.source!r}, images={self.num_images}, pairs={self.num_pairs}, "
            f"classes={self.num_classes})"
        )

    @property
    def num_images(self) -> int:
        return len(self.filenames)

    @property
    def num_pairs(self) -> int:
        return int(self.image.shape[0])

    @property
    def n_gt_per_class(self) -> np.ndarray:
        """GT instance count of each class (the recall denominator)."""
        return np.bincount(self.hoi, minlength=self.num_classes)

    def image_id(self, name: str) -> int | None:
        """Index of image ``name`` in ``filenames``, or None if it is not in this GT."""
        return self._index.get(name)


def _fail(path: Path, what: str) -> InputFileError:
    return InputFileError(f"ground-truth file {path}: {what}")


def _int_list(path: Path, value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(type(v) is int for v in value):
        raise _fail(path, f"{where} must be a list of integers")
    return value


def load_groundtruth(path: str | Path, num_classes: int | None = None) -> GroundTruth:
    """Load a GT JSON file (either layout of :mod:`hoi_edge.data.hico_json`) into a :class:`GroundTruth`.

    ``num_classes`` is taken from ``correspondence`` when present; otherwise from the
    argument, defaulting to HICO-DET's 600. Raises :class:`InputFileError` naming the
    file (and the offending image) if it is missing or malformed.
    """
    hico = read_hico_json(path, "ground-truth file")
    p = hico.path
    class_object = _class_table(p, hico.correspondence, num_classes)
    if class_object is not None:
        num_classes = len(class_object)
    elif num_classes is None:
        num_classes = HICO_NUM_CLASSES
    class_object = _check_classes(hico, num_classes, class_object)
    rare = None if hico.rare is None else tuple(_int_list(p, hico.rare, "'rare'"))
    non_rare = None if hico.non_rare is None else tuple(_int_list(p, hico.non_rare, "'non_rare'"))
    for name, idx in (("rare", rare), ("non_rare", non_rare)):
        if idx is not None and any(not 0 <= c < num_classes for c in idx):
            raise _fail(p, f"'{name}' has class indices outside 0..{num_classes - 1}")
    return GroundTruth(
        filenames=hico.filenames, num_classes=int(num_classes), class_object=class_object, image=hico.image,
        hoi=hico.hoi, object=hico.object, boxes_h=hico.boxes_h, boxes_o=hico.boxes_o, rare=rare,
        non_rare=non_rare, source=str(p),
    )


def _class_table(p: Path, corr: Any, num_classes: int | None) -> np.ndarray | None:
    """class -> object index from the file's ``correspondence`` rows, or None when it has none."""
    if corr is None:
        return None
    if not isinstance(corr, list) or not all(
        isinstance(row, list) and len(row) >= 2 and all(type(v) is int for v in row) for row in corr
    ):
        raise _fail(p, "'correspondence' must be a list of [hoi, object, verb] integer rows")
    if num_classes is not None and num_classes != len(corr):
        raise _fail(p, f"'correspondence' has {len(corr)} classes but {num_classes} were expected")
    class_object = np.full(len(corr), -1, dtype=np.int64)
    for row in corr:
        if not 0 <= row[0] < len(corr):
            raise _fail(p, f"'correspondence' row {row} has a class index outside 0..{len(corr) - 1}")
        class_object[row[0]] = row[1]
    if (class_object < 0).any():
        raise _fail(p, "'correspondence' does not list every class exactly once")
    return class_object


def _check_classes(hico: HicoFile, num_classes: int, class_object: np.ndarray | None) -> np.ndarray:
    """Every pair's class is in range and belongs to the pair's object; returns the class -> object table
    (learnt from the pairs themselves when the file has no ``correspondence``)."""
    hoi, obj, image_ids = hico.hoi, hico.object, hico.image
    bad = np.flatnonzero(hoi >= num_classes)
    if bad.size:
        j = int(bad[0])
        raise hico.error(f"{hico.where[image_ids[j]]} has hoi {int(hoi[j])} outside 0..{num_classes - 1}")
    if class_object is None:
        class_object = np.full(num_classes, -1, dtype=np.int64)
        class_object[hoi] = obj
    mismatch = np.flatnonzero(class_object[hoi] != obj)
    if mismatch.size:
        j = int(mismatch[0])
        raise hico.error(f"{hico.where[image_ids[j]]}: pair with hoi {int(hoi[j])} has object "
                         f"{int(obj[j])}, but class {int(hoi[j])} belongs to object {int(class_object[hoi[j]])}")
    return class_object
