"""Ground-truth HOI pairs as flat NumPy arrays, loaded from the fredzzhang/hicodet JSON format.

Two layouts are accepted (the per-image fields are the same in both):

* fredzzhang/hicodet ``instances_test2015.json``: top-level ``annotation`` (one dict per
  image with ``boxes_h``, ``boxes_o``, ``hoi``, ``object``, ``verb``), ``filenames``, and
  optionally ``correspondence`` (``[hoi, object, verb]`` per class), ``rare``, ``non_rare``.
* a per-image list: ``{"images": [{"file_name": ..., "boxes_h": ..., "boxes_o": ...,
  "hoi": ..., "object": ...}, ...]}`` (the layout of ``real_test_images/annotations.json``).

Every annotated (human, object, HOI) entry is one GT instance. Images with no pairs are
kept: detections on them still count (as false positives). Flat arrays (one row per
pair) let the matcher group pairs by (class, image) with a single sort.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hoi_edge.errors import InputFileError
from hoi_edge.jsonio import read_json_object

#: Number of HOI classes of HICO-DET; the default when a GT file has no ``correspondence``.
HICO_NUM_CLASSES = 600

_PAIR_FIELDS = ("boxes_h", "boxes_o", "hoi", "object")


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
    """Load a GT JSON file (either layout above) into a :class:`GroundTruth`.

    ``num_classes`` is taken from ``correspondence`` when present; otherwise from the
    argument, defaulting to HICO-DET's 600. Raises :class:`InputFileError` naming the
    file (and the offending image) if it is missing or malformed.
    """
    p = Path(path)
    data = read_json_object(p, "ground-truth file")

    if "annotation" in data and "filenames" in data:
        annotations, filenames = data["annotation"], data["filenames"]
        if not isinstance(annotations, list) or not isinstance(filenames, list):
            raise _fail(p, "'annotation' and 'filenames' must be lists")
        if len(annotations) != len(filenames):
            raise _fail(p, f"{len(annotations)} annotations but {len(filenames)} filenames")
        labels = [f"annotation[{i}]" for i in range(len(annotations))]
    elif "images" in data and isinstance(data["images"], list):
        annotations = data["images"]
        filenames = []
        for i, entry in enumerate(annotations):
            if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
                raise _fail(p, f"images[{i}] must be an object with a string 'file_name'")
            filenames.append(entry["file_name"])
        labels = [f"images[{i}]" for i in range(len(annotations))]
    else:
        raise _fail(p, "expected keys 'annotation' + 'filenames' (fredzzhang/hicodet) or 'images'")
    if not all(isinstance(name, str) for name in filenames):
        raise _fail(p, "'filenames' must be strings")
    if len(set(filenames)) != len(filenames):
        raise _fail(p, "duplicate image file names")

    class_object: np.ndarray | None = None
    if "correspondence" in data:
        corr = data["correspondence"]
        if not isinstance(corr, list) or not all(
            isinstance(row, list) and len(row) >= 2 and all(type(v) is int for v in row) for row in corr
        ):
            raise _fail(p, "'correspondence' must be a list of [hoi, object, verb] integer rows")
        if num_classes is not None and num_classes != len(corr):
            raise _fail(p, f"'correspondence' has {len(corr)} classes but {num_classes} were expected")
        num_classes = len(corr)
        class_object = np.full(num_classes, -1, dtype=np.int64)
        for row in corr:
            if not 0 <= row[0] < num_classes:
                raise _fail(p, f"'correspondence' row {row} has a class index outside 0..{num_classes - 1}")
            class_object[row[0]] = row[1]
        if (class_object < 0).any():
            raise _fail(p, "'correspondence' does not list every class exactly once")
    if num_classes is None:
        num_classes = HICO_NUM_CLASSES

    image_ids: list[int] = []
    hois: list[int] = []
    objects: list[int] = []
    boxes_h: list[Any] = []
    boxes_o: list[Any] = []
    for i, (entry, label) in enumerate(zip(annotations, labels)):
        if not isinstance(entry, dict):
            raise _fail(p, f"{label} must be an object")
        missing = [k for k in _PAIR_FIELDS if k not in entry]
        if missing:
            raise _fail(p, f"{label} ({filenames[i]}) lacks {', '.join(map(repr, missing))}")
        lengths = {k: len(entry[k]) if isinstance(entry[k], list) else -1 for k in _PAIR_FIELDS}
        if len(set(lengths.values())) != 1 or lengths["hoi"] < 0:
            raise _fail(p, f"{label} ({filenames[i]}): fields must be lists of equal length, got {lengths}")
        n = lengths["hoi"]
        _int_list(p, entry["hoi"], f"{label}.hoi")
        _int_list(p, entry["object"], f"{label}.object")
        for key in ("boxes_h", "boxes_o"):
            for box in entry[key]:
                if not (
                    isinstance(box, list)
                    and len(box) == 4
                    and all(type(v) in (int, float) for v in box)
                ):
                    raise _fail(p, f"{label} ({filenames[i]}).{key}: {box!r} is not 4 numbers")
        image_ids.extend([i] * n)
        hois.extend(entry["hoi"])
        objects.extend(entry["object"])
        boxes_h.extend(entry["boxes_h"])
        boxes_o.extend(entry["boxes_o"])

    hoi_arr = np.asarray(hois, dtype=np.int64)
    obj_arr = np.asarray(objects, dtype=np.int64)
    bad = np.flatnonzero((hoi_arr < 0) | (hoi_arr >= num_classes))
    if bad.size:
        j = int(bad[0])
        raise _fail(
            p,
            f"{labels[image_ids[j]]} ({filenames[image_ids[j]]}) has hoi {hois[j]} outside 0..{num_classes - 1}",
        )
    if class_object is None:
        # No vocabulary table in the file: learn class -> object from the pairs themselves.
        class_object = np.full(num_classes, -1, dtype=np.int64)
        class_object[hoi_arr] = obj_arr
    mismatch = np.flatnonzero(class_object[hoi_arr] != obj_arr)
    if mismatch.size:
        j = int(mismatch[0])
        raise _fail(
            p,
            f"{labels[image_ids[j]]} ({filenames[image_ids[j]]}): pair with hoi {hois[j]} has object "
            f"{objects[j]}, but class {hois[j]} belongs to object {int(class_object[hois[j]])}",
        )

    rare = non_rare = None
    if "rare" in data:
        rare = tuple(_int_list(p, data["rare"], "'rare'"))
    if "non_rare" in data:
        non_rare = tuple(_int_list(p, data["non_rare"], "'non_rare'"))
    for name, idx in (("rare", rare), ("non_rare", non_rare)):
        if idx is not None and any(not 0 <= c < num_classes for c in idx):
            raise _fail(p, f"'{name}' has class indices outside 0..{num_classes - 1}")

    return GroundTruth(
        filenames=tuple(filenames),
        num_classes=int(num_classes),
        class_object=class_object,
        image=np.asarray(image_ids, dtype=np.int64),
        hoi=hoi_arr,
        object=obj_arr,
        boxes_h=np.asarray(boxes_h, dtype=np.float64).reshape(-1, 4),
        boxes_o=np.asarray(boxes_o, dtype=np.float64).reshape(-1, 4),
        rare=rare,
        non_rare=non_rare,
        source=str(p),
    )
