"""The one reader of HICO-DET annotation JSON, shared by training (:mod:`train.dataset`), evaluation
(:mod:`hoi_edge.eval.groundtruth`), calibration (:mod:`compress.calibration`) and validation
(:mod:`hoi_edge.validate.dataset`), so all four accept the same files and reject them in the same words.

Two layouts are read (the per-image fields are the same in both):

* fredzzhang/hicodet ``instances_*.json``: top-level ``annotation`` (one object per image with
  ``boxes_h``, ``boxes_o``, ``hoi``, ``object`` and optionally ``verb``), ``filenames``, optionally
  ``size`` (``[width, height]`` per image), ``correspondence`` (``[hoi, object, verb]`` per class),
  ``rare`` and ``non_rare`` (also ``samples/labels/photos_hoi.json``);
* a per-image list: ``{"images": [{"file_name": ..., "size_wh": [w, h], "boxes_h": ..., ...}, ...]}``
  (the layout of ``real_test_images/annotations.json``).

Each entry is one (human box, object box, HOI class); boxes are ``x1, y1, x2, y2`` pixels with
``x1 <= x2`` and ``y1 <= y2``. Images without pairs are kept. Class indices are only checked to be
non-negative here: their range depends on the vocabulary the caller scores against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.core.jsonio import read_json_object

PAIR_FIELDS = ("boxes_h", "boxes_o", "hoi", "object")


@dataclass(frozen=True, eq=False)
class HicoImage:
    """The GT pairs of one image; row ``i`` of every array is entry ``i``. Boxes: x1,y1,x2,y2 pixels (float64 as
    read; training keeps float32 copies). The one type for an image's annotations: evaluation, calibration,
    validation and training (:mod:`train.dataset`) all use it."""

    filename: str
    size: tuple[int, int] | None          # (width, height) when the file states it
    boxes_h: np.ndarray                   # (N,4)
    boxes_o: np.ndarray                   # (N,4)
    hoi: np.ndarray                       # (N,) int64, index into the HOI vocabulary
    object: np.ndarray                    # (N,) int64, vocabulary object index
    verb: np.ndarray                      # (N,) int64, -1 when the file has no verbs
    where: str = ""                       # how errors name it: "annotation[3] (HICO_test2015_00000004.jpg)"

    @property
    def num_pairs(self) -> int:
        return int(self.hoi.shape[0])

    def select(self, keep: np.ndarray) -> "HicoImage":
        """Only the entries ``keep`` selects (a boolean mask or indices)."""
        return replace(self, boxes_h=self.boxes_h[keep], boxes_o=self.boxes_o[keep], hoi=self.hoi[keep],
                       object=self.object[keep], verb=self.verb[keep])

    def hflip(self, width: int) -> "HicoImage":
        """Boxes mirrored for a horizontally flipped image of ``width`` pixels."""
        def flip(b: np.ndarray) -> np.ndarray:
            return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1).astype(b.dtype)
        return replace(self, boxes_h=flip(self.boxes_h), boxes_o=flip(self.boxes_o))

    def as_float32(self) -> "HicoImage":
        return replace(self, boxes_h=self.boxes_h.astype(np.float32), boxes_o=self.boxes_o.astype(np.float32))


@dataclass(frozen=True, eq=False)
class HicoFile:
    """A parsed annotation file: every pair as one row of flat arrays (``image[i]`` is the index of row
    ``i``'s image), images in file order, and the file-level lists as the file has them
    (``correspondence``, ``rare``, ``non_rare``: None when absent; the evaluator checks them)."""

    path: Path
    what: str                             # how errors name the file: 'ground-truth file', 'annotation file'
    filenames: tuple[str, ...]
    where: tuple[str, ...]                # how errors name each image: "annotation[3] (HICO_....jpg)"
    sizes: tuple[tuple[int, int] | None, ...]
    image: np.ndarray                     # (P,) int64
    boxes_h: np.ndarray                   # (P,4) float64
    boxes_o: np.ndarray                   # (P,4) float64
    hoi: np.ndarray                       # (P,) int64
    object: np.ndarray                    # (P,) int64
    verb: np.ndarray                      # (P,) int64, -1 when the file has no verbs
    correspondence: Any = None
    rare: Any = None
    non_rare: Any = None

    @property
    def images(self) -> tuple[HicoImage, ...]:
        """Per image, views of its rows."""
        ends = np.cumsum(np.bincount(self.image, minlength=len(self.filenames))).tolist()
        out, start = [], 0
        for i, end in enumerate(ends):
            rows = slice(start, end)
            out.append(HicoImage(where=self.where[i], filename=self.filenames[i], size=self.sizes[i],
                                 boxes_h=self.boxes_h[rows], boxes_o=self.boxes_o[rows], hoi=self.hoi[rows],
                                 object=self.object[rows], verb=self.verb[rows]))
            start = end
        return tuple(out)

    def error(self, problem: str) -> InputFileError:
        """An error naming this file (``"ground-truth file PATH: ..."``)."""
        return InputFileError(f"{self.what} {self.path}: {problem}")


def read_hico_json(path: str | Path, what: str = "annotation file") -> HicoFile:
    """Parse and check ``path``; ``what`` names it in errors ('annotation file', 'ground-truth file')."""
    p = Path(path)
    data = read_json_object(p, what)
    entries, names, sizes, labels = _layout(p, what, data)
    if len(set(names)) != len(names):
        raise _fail(p, what, "duplicate image file names")
    where = tuple(f"{label} ({name})" for label, name in zip(labels, names))
    checked = [_image(p, what, w, size, entry) for w, size, entry in zip(where, sizes, entries)]
    arrays = _as_arrays(p, what, where, [fields for _, fields in checked])
    return HicoFile(path=p, what=what, filenames=tuple(names), where=where, sizes=tuple(s for s, _ in checked),
                    **arrays, correspondence=data.get("correspondence"), rare=data.get("rare"),
                    non_rare=data.get("non_rare"))


def _fail(p: Path, what: str, problem: str) -> InputFileError:
    return InputFileError(f"{what} {p}: {problem}")


def _layout(p: Path, what: str, data: dict[str, Any]) -> tuple[list[Any], list[str], list[Any], list[str]]:
    """(per-image entries, file names, sizes or None, entry labels) of either layout."""
    if "annotation" in data and "filenames" in data:
        entries, names = data["annotation"], data["filenames"]
        if not isinstance(entries, list) or not isinstance(names, list):
            raise _fail(p, what, "'annotation' and 'filenames' must be lists")
        if len(entries) != len(names):
            raise _fail(p, what, f"{len(entries)} annotations but {len(names)} filenames")
        sizes = data.get("size") or [None] * len(names)
        if not isinstance(sizes, list) or len(sizes) != len(names):
            raise _fail(p, what, "'size' must list one [width, height] per filename")
        labels = [f"annotation[{i}]" for i in range(len(entries))]
    elif isinstance(data.get("images"), list):
        entries = data["images"]
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
                raise _fail(p, what, f"images[{i}] must be an object with a string 'file_name'")
        names = [e["file_name"] for e in entries]
        sizes = [e.get("size_wh") for e in entries]
        labels = [f"images[{i}]" for i in range(len(entries))]
    else:
        raise _fail(p, what, "expected keys 'annotation' + 'filenames' (fredzzhang/hicodet) or an 'images' list")
    bad = [i for i, n in enumerate(names) if not isinstance(n, str) or not n]
    if bad:
        raise _fail(p, what, f"image {bad[0]} has no file name ('filenames' must be non-empty strings)")
    return entries, names, sizes, labels


def _image(p: Path, what: str, where: str, size: Any, entry: Any) -> tuple[tuple[int, int] | None, dict[str, list]]:
    """(size, fields) of one checked image entry; fields stay Python lists (see :func:`_as_arrays`)."""
    def fail(problem: str) -> InputFileError:
        return _fail(p, what, f"{where} {problem}")

    if not isinstance(entry, dict):
        raise fail("must be an object")
    missing = [k for k in PAIR_FIELDS if k not in entry]
    if missing:
        raise fail(f"lacks {', '.join(map(repr, missing))}")
    n = len(entry["hoi"]) if isinstance(entry["hoi"], list) else -1
    fields = {k: entry[k] for k in PAIR_FIELDS}
    fields["verb"] = entry.get("verb", [-1] * max(n, 0))
    lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in fields.items()}
    if n < 0 or set(lengths.values()) != {n}:
        raise fail(f"fields must be lists of equal length, got {lengths}")
    for key in ("hoi", "object", "verb"):
        if not set(map(type, fields[key])) <= {int}:
            raise fail(f"{key} must be a list of integers")
    if n and (min(fields["hoi"]) < 0 or min(fields["object"]) < 0):
        raise fail("has negative class indices")
    for key in ("boxes_h", "boxes_o"):
        boxes = fields[key]      # set(map(...)): the checks run in C, the loop below only names the culprit
        if n and not (set(map(type, boxes)) == {list} and set(map(len, boxes)) == {4}
                      and set(map(type, chain.from_iterable(boxes))) <= {int, float}):
            bad = next(b for b in boxes if not (isinstance(b, list) and len(b) == 4
                                                and all(type(v) in (int, float) for v in b)))
            raise fail(f"{key}: {bad!r} is not 4 numbers")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int and v > 0 for v in size)):
            raise fail(f"size {size!r} is not [width, height]")
        size = (size[0], size[1])
    return size, fields


def _as_arrays(path: Path, what: str, where: tuple[str, ...], fields: list[dict[str, list]]) -> dict[str, np.ndarray]:
    """One NumPy conversion per field for the whole file (per image costs more than the parsing on the
    9,658-image test set); boxes are checked x1 <= x2, y1 <= y2 on the arrays."""
    flat: dict[str, list] = {k: [] for k in (*PAIR_FIELDS, "verb")}
    for image_fields in fields:
        for key, values in image_fields.items():
            flat[key].extend(values)
    arrays = {k: np.asarray(v, dtype=np.float64 if k.startswith("boxes") else np.int64) for k, v in flat.items()}
    counts = [len(f["hoi"]) for f in fields]
    arrays["image"] = np.repeat(np.arange(len(fields), dtype=np.int64), counts)
    for key in ("boxes_h", "boxes_o"):
        boxes = arrays[key] = arrays[key].reshape(-1, 4)
        inverted = np.flatnonzero((boxes[:, 0] > boxes[:, 2]) | (boxes[:, 1] > boxes[:, 3]))
        if inverted.size:
            row = int(inverted[0])
            image = int(arrays["image"][row])
            box = fields[image][key][row - sum(counts[:image])]
            raise _fail(path, what, f"{where[image]} {key}: {box!r} is not a box x1,y1,x2,y2 with "
                                    "x1 <= x2, y1 <= y2")
    return arrays
