"""HOI detections: the JSON-lines file format, its reader and writer.

Format (UTF-8, one JSON object per line, one line per image; blank lines are ignored)::

    {"image": "HICO_test2015_00000001.jpg",
     "detections": [{"hoi": 245, "score": 0.83,
                     "human_box": [x1, y1, x2, y2], "object_box": [x1, y1, x2, y2]}, ...]}

* ``image``: the file name exactly as in the ground truth (``filenames`` / ``file_name``).
* ``hoi``: 0-based class index into the vocabulary (0..599 for HICO-DET).
* ``score``: finite number; higher means more confident. Ranking is per class over the
  whole test set, so scores must be comparable across images.
* boxes: 4 finite numbers ``x1, y1, x2, y2`` in the same pixel coordinates as the GT
  (IoU uses the inclusive convention on both sides). The official MATLAB code adds 1 to
  0-based detection coordinates before comparing them with its GT. Models trained on the
  fredzzhang/hicodet GT used here predict in its frame, so by default nothing is added;
  ``EvalConfig(box_offset=1)`` (CLI ``--box-offset 1``) shifts 0-based predictions from
  PPDM/GEN-VLKT-style annotations.
* Each image appears on at most one line; images without a line have no detections.
  Detections are used as given (no NMS); use ``--top-k`` to cap them per image.

JSON lines keep files streamable and let a malformed entry be reported by line number.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike

from hoi_edge.core.atomic import atomic_open
from hoi_edge.core.errors import InputFileError
from hoi_edge.eval.groundtruth import GroundTruth

_DET_KEYS = ("hoi", "score", "human_box", "object_box")


@dataclass(frozen=True, eq=False)
class Predictions:
    """All detections of a run as flat arrays; ``image`` indexes ``GroundTruth.filenames``."""

    image: np.ndarray
    hoi: np.ndarray
    score: np.ndarray
    boxes_h: np.ndarray
    boxes_o: np.ndarray
    source: str = "<memory>"
    listed: frozenset[int] | None = None     # images the file had a line for (read from a file), else unknown
    warning: str | None = None               # what the reader passed over (an incomplete last line)

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        for name in ("image", "hoi", "score"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Predictions.{name} must have shape ({n},)")
        for name in ("boxes_h", "boxes_o"):
            if getattr(self, name).shape != (n, 4):
                raise ValueError(f"Predictions.{name} must have shape ({n}, 4)")

    @classmethod
    def from_arrays(
        cls,
        image: ArrayLike,
        hoi: ArrayLike,
        score: ArrayLike,
        boxes_h: ArrayLike,
        boxes_o: ArrayLike,
        source: str = "<memory>",
    ) -> "Predictions":
        """Build from array-likes, converting dtypes (int64 indices, float64 scores/boxes)."""
        return cls(
            image=np.asarray(image, dtype=np.int64).reshape(-1),
            hoi=np.asarray(hoi, dtype=np.int64).reshape(-1),
            score=np.asarray(score, dtype=np.float64).reshape(-1),
            boxes_h=np.asarray(boxes_h, dtype=np.float64).reshape(-1, 4),
            boxes_o=np.asarray(boxes_o, dtype=np.float64).reshape(-1, 4),
            source=source,
        )

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def __repr__(self) -> str:
        return f"Predictions(source={self.source!r}, detections={len(self)})"

    def select(self, index: np.ndarray) -> "Predictions":
        """Subset by boolean mask or integer index array, keeping the source name."""
        return Predictions(
            image=self.image[index],
            hoi=self.hoi[index],
            score=self.score[index],
            boxes_h=self.boxes_h[index],
            boxes_o=self.boxes_o[index],
            source=self.source,
            listed=self.listed,
        )

    def shift_boxes(self, offset: float) -> "Predictions":
        """A copy with ``offset`` added to every box coordinate (``self`` if it is 0)."""
        if offset == 0:
            return self
        return Predictions(
            image=self.image,
            hoi=self.hoi,
            score=self.score,
            boxes_h=self.boxes_h + offset,
            boxes_o=self.boxes_o + offset,
            source=self.source,
            listed=self.listed,
        )

    def to_image_detections(self, filenames: Sequence[str]) -> Iterator["ImageDetections"]:
        """One record per file name (in order), an empty one for an image without detections: a
        prediction file then says which images were run, and ``eval`` can check its coverage."""
        order = np.argsort(self.image, kind="stable")
        bounds = np.searchsorted(self.image[order], np.arange(len(filenames) + 1))
        for i, name in enumerate(filenames):
            idx = order[bounds[i]:bounds[i + 1]]
            yield ImageDetections(
                image=name,
                hoi=self.hoi[idx],
                score=self.score[idx],
                human_boxes=self.boxes_h[idx],
                object_boxes=self.boxes_o[idx],
            )


@dataclass(frozen=True)
class ImageDetections:
    """The detections of one image, as a model produces them (input of the writer)."""

    image: str
    hoi: ArrayLike
    score: ArrayLike
    human_boxes: ArrayLike
    object_boxes: ArrayLike


def predictions_from_groundtruth(gt: GroundTruth, score: float = 1.0) -> Predictions:
    """Every GT pair as a detection (a perfect detector): a sanity check that must give 100 mAP."""
    return Predictions.from_arrays(
        image=gt.image.copy(),
        hoi=gt.hoi.copy(),
        score=np.full(gt.num_pairs, score, dtype=np.float64),
        boxes_h=gt.boxes_h.copy(),
        boxes_o=gt.boxes_o.copy(),
        source=f"groundtruth:{gt.source}",
    )


def write_predictions(path: str | Path, images: Iterable[ImageDetections]) -> int:
    """Write detections in the JSON-lines format; returns the number of detections written.

    The file appears only when complete (temp file + rename). Raises ``ValueError`` for
    inconsistent lengths or non-finite values, which would produce an unreadable file.
    """
    total = 0
    with atomic_open(path) as handle:
        for rec in images:
            hoi = np.asarray(rec.hoi).reshape(-1)
            score = np.asarray(rec.score, dtype=np.float64).reshape(-1)
            hb = np.asarray(rec.human_boxes, dtype=np.float64).reshape(-1, 4)
            ob = np.asarray(rec.object_boxes, dtype=np.float64).reshape(-1, 4)
            n = hoi.shape[0]
            if not (score.shape[0] == hb.shape[0] == ob.shape[0] == n):
                raise ValueError(f"{rec.image}: hoi, score and boxes have different lengths")
            if hoi.dtype.kind not in "iu":
                if not np.all(np.mod(hoi, 1) == 0):
                    raise ValueError(f"{rec.image}: hoi indices must be integers")
            if not (np.isfinite(score).all() and np.isfinite(hb).all() and np.isfinite(ob).all()):
                raise ValueError(f"{rec.image}: scores and boxes must be finite")
            dets = [
                {"hoi": h, "score": s, "human_box": b1, "object_box": b2}
                for h, s, b1, b2 in zip(hoi.astype(np.int64).tolist(), score.tolist(), hb.tolist(), ob.tolist())
            ]
            handle.write(json.dumps({"image": rec.image, "detections": dets}, separators=(",", ":")))
            handle.write("\n")
            total += n
    return total


class _LineError(Exception):
    """Internal: what is wrong with the current line (the reader adds file and line)."""


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _boxes(values: list[Any], key: str, may_have_bools: bool) -> np.ndarray:
    """Fast path: one NumPy conversion; slow path only to name the first bad box.

    NumPy silently turns ``true`` into 1, so lines that may hold JSON booleans always take
    the slow, per-value check.
    """
    try:
        arr = np.array(values)
        ok = arr.ndim == 2 and arr.shape[1] == 4 and arr.dtype.kind in "if" and np.isfinite(arr).all()
    except (ValueError, TypeError):
        ok = False
    if ok and not may_have_bools:
        return arr.astype(np.float64, copy=False)
    for j, box in enumerate(values):
        if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
            raise _LineError(f"detections[{j}].{key} must be 4 finite numbers [x1, y1, x2, y2], got {box!r}")
    return np.array(values, dtype=np.float64)


def _parse_detections(dets: list[Any], num_classes: int, may_have_bools: bool) -> tuple[np.ndarray, ...]:
    try:
        hoi = [d["hoi"] for d in dets]
        score = [d["score"] for d in dets]
        hb = [d["human_box"] for d in dets]
        ob = [d["object_box"] for d in dets]
    except (KeyError, TypeError):
        for j, d in enumerate(dets):
            if not isinstance(d, dict):
                raise _LineError(f"detections[{j}] must be an object, got {d!r}") from None
            for key in _DET_KEYS:
                if key not in d:
                    raise _LineError(f"detections[{j}] is missing key '{key}'") from None
        raise  # pragma: no cover
    hoi_arr = _numeric(hoi, "iu", may_have_bools)
    if hoi_arr is None:
        for j, h in enumerate(hoi):
            if type(h) is not int:
                raise _LineError(f"detections[{j}].hoi must be an integer, got {h!r}")
        hoi_arr = np.array(hoi, dtype=object)
    bad = np.flatnonzero((hoi_arr < 0) | (hoi_arr >= num_classes))
    if bad.size:
        j = int(bad[0])
        raise _LineError(
            f"detections[{j}].hoi = {hoi[j]} is out of range for a vocabulary of {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
    score_arr = _numeric(score, "iuf", may_have_bools)
    if score_arr is None:
        for j, s in enumerate(score):
            if not _is_number(s):
                raise _LineError(f"detections[{j}].score must be a finite number, got {s!r}")
        score_arr = np.array(score, dtype=np.float64)
    return (
        hoi_arr.astype(np.int64),
        score_arr.astype(np.float64, copy=False),
        _boxes(hb, "human_box", may_have_bools),
        _boxes(ob, "object_box", may_have_bools),
    )


def _numeric(values: list[Any], kinds: str, may_have_bools: bool) -> np.ndarray | None:
    """``values`` as a 1-D array if they are plainly numbers of the given kinds, else None."""
    if may_have_bools:
        return None
    try:
        arr = np.array(values)
    except (ValueError, TypeError):
        return None
    if arr.ndim != 1 or arr.dtype.kind not in kinds or (arr.dtype.kind == "f" and not np.isfinite(arr).all()):
        return None
    return arr


def read_predictions(path: str | Path, gt: GroundTruth) -> Predictions:
    """Read a JSON-lines prediction file against ``gt`` (image names, vocabulary size).

    Raises :class:`InputFileError` naming the file, the 1-based line number and the
    problem: bad JSON, missing key, box not 4 numbers, hoi out of range, unknown or
    repeated image name.
    """
    p = Path(path)
    images: list[np.ndarray] = []
    parts: list[tuple[np.ndarray, ...]] = []
    seen_on: dict[int, int] = {}
    warning = None
    try:
        with p.open("rb") as handle:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    parsed = _parse_line(line, lineno, gt, seen_on)
                except _LineError as exc:
                    if not line.endswith(b"\n"):     # the last line, cut short: a run stopped while writing it
                        warning = (f"{p}: line {lineno}, the last one, is incomplete (the run that wrote it was "
                                   "stopped?); it was left out")
                        break
                    raise InputFileError(f"prediction file {p}, line {lineno}: {exc}") from None
                if parsed is not None:
                    idx, arrays = parsed
                    images.append(np.full(len(arrays[0]), idx, dtype=np.int64))
                    parts.append(arrays)
    except FileNotFoundError:
        raise InputFileError(f"prediction file not found: {p}") from None
    except OSError as exc:
        raise InputFileError(f"cannot read prediction file {p}: {exc}") from None

    listed = frozenset(seen_on)
    if not parts:
        empty = np.zeros(0)
        return replace(Predictions.from_arrays(empty, empty, empty, np.zeros((0, 4)), np.zeros((0, 4)), source=str(p)),
                       listed=listed, warning=warning)
    return Predictions(
        image=np.concatenate(images),
        hoi=np.concatenate([a[0] for a in parts]),
        score=np.concatenate([a[1] for a in parts]),
        boxes_h=np.concatenate([a[2] for a in parts]),
        boxes_o=np.concatenate([a[3] for a in parts]),
        source=str(p),
        listed=listed,
        warning=warning,
    )


def _parse_line(line: bytes, lineno: int, gt: GroundTruth,
                seen_on: dict[int, int]) -> tuple[int, tuple[np.ndarray, ...]] | None:
    """One line's (image index, detection arrays), or None when it lists no detections; records the
    image in ``seen_on``. Raises :class:`_LineError` with what is wrong."""
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _LineError(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise _LineError(f"bad JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _LineError(f"expected a JSON object, got {type(obj).__name__}")
    for key in ("image", "detections"):
        if key not in obj:
            raise _LineError(f"missing key '{key}'")
    name = obj["image"]
    if not isinstance(name, str):
        raise _LineError(f"'image' must be a file name string, got {name!r}")
    idx = gt.image_id(name)
    if idx is None:
        raise _LineError(f"unknown image name {name!r} (not in the ground truth {gt.source})")
    if idx in seen_on:
        raise _LineError(f"image {name!r} already listed on line {seen_on[idx]}")
    seen_on[idx] = lineno
    dets = obj["detections"]
    if not isinstance(dets, list):
        raise _LineError(f"'detections' must be a list, got {type(dets).__name__}")
    if not dets:
        return None
    may_have_bools = b"true" in line or b"false" in line
    return idx, _parse_detections(dets, gt.num_classes, may_have_bools)


def coverage_warning(predictions: Predictions, gt: GroundTruth) -> str | None:
    """Why an mAP over ``gt`` may mislead: the prediction file lists only some of its images (or none).
    Every missing image counts as one without detections, so its GT pairs all become misses."""
    if predictions.listed is None:
        return None
    n, total = len(predictions.listed), gt.num_images
    if n >= total:
        return None
    if n == 0:
        return (f"{predictions.source} lists none of the {total} ground-truth images: every GT pair counts as "
                "missed (mAP 0); was it written for another GT file?")
    return (f"{predictions.source} covers {n} of the {total} ground-truth images; the {total - n} missing images "
            "count as having no detections, which lowers recall and mAP (evaluate on a GT file of the images "
            "you ran, or run them all)")
