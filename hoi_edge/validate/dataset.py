"""What to validate on: a HICO-format annotation file (images with ground truth) or a plain
folder of images (no labels, so only agreement with the reference can be measured)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hoi_edge.core.errors import InputFileError
from hoi_edge.data.sources import IMAGE_SUFFIXES, list_image_files
from hoi_edge.eval import GroundTruth, load_groundtruth


@dataclass(frozen=True)
class Dataset:
    """Images in a fixed order; ``names[i]`` is how image ``i`` is called in the GT and the reports."""

    source: Path
    names: tuple[str, ...]
    paths: tuple[Path, ...]
    groundtruth: GroundTruth | None = None

    @property
    def has_groundtruth(self) -> bool:
        return self.groundtruth is not None

    @property
    def kind(self) -> str:
        return "hico" if self.has_groundtruth else "folder"

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self) -> dict:
        gt = self.groundtruth
        return {
            "source": str(self.source), "kind": self.kind, "num_images": len(self),
            "has_groundtruth": self.has_groundtruth, "num_gt_pairs": gt.num_pairs if gt is not None else None,
        }


def load_dataset(data: str | Path, images: str | Path | None = None, limit: int | None = None) -> Dataset:
    """``data`` is a HICO-format annotation ``.json`` (images beside it, or in ``images``) or a folder
    of images. ``limit`` keeps the first N images (file order), and the GT of those images only,
    so a partial run still gives a correct mAP for the images it saw."""
    data = Path(data)
    if limit is not None and limit < 1:
        raise InputFileError(f"--limit must be at least 1, got {limit}")
    if data.is_dir():
        if images is not None:
            raise InputFileError(f"--images is only used with a HICO annotation file; {data} is already a folder")
        return _folder_dataset(data, limit)
    if data.is_file() and data.suffix.lower() == ".json":
        return _hico_dataset(data, Path(images) if images is not None else data.parent, limit)
    if not data.exists():
        raise InputFileError(f"validation data not found: {data}")
    raise InputFileError(f"{data}: expected a HICO-format annotation .json or a folder of images")


def _folder_dataset(folder: Path, limit: int | None) -> Dataset:
    paths = list_image_files(folder)
    if not paths:
        raise InputFileError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {folder}")
    paths = paths[:limit]
    return Dataset(source=folder, names=tuple(p.relative_to(folder).as_posix() for p in paths), paths=tuple(paths))


def _hico_dataset(path: Path, images: Path, limit: int | None) -> Dataset:
    gt = load_groundtruth(path)
    if gt.num_images == 0:
        raise InputFileError(f"ground-truth file {path} lists no images")
    if not images.is_dir():
        raise InputFileError(f"images folder not found: {images}")
    keep = list(range(gt.num_images))[:limit]
    names = [gt.filenames[i] for i in keep]
    paths = [images / n for n in names]
    missing = [n for n, p in zip(names, paths) if not p.is_file()]
    if missing:
        hint = "" if images != path.parent else " (pass --images DIR if they are elsewhere)"
        raise InputFileError(f"{len(missing)} of {len(names)} images listed in {path} are missing from {images}"
                             f"{hint}: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    if len(keep) < gt.num_images:
        gt = subset_groundtruth(gt, keep)
    return Dataset(source=path, names=tuple(names), paths=tuple(paths), groundtruth=gt)


def subset_groundtruth(gt: GroundTruth, keep: list[int]) -> GroundTruth:
    """The GT of images ``keep`` only (renumbered 0..len(keep)-1): with ``--limit``, the images not
    run must not count as misses."""
    remap = np.full(gt.num_images, -1, dtype=np.int64)
    remap[np.asarray(keep, dtype=np.int64)] = np.arange(len(keep))
    rows = remap[gt.image] >= 0
    return GroundTruth.from_arrays(
        filenames=[gt.filenames[i] for i in keep], num_classes=gt.num_classes, image=remap[gt.image[rows]],
        hoi=gt.hoi[rows], boxes_h=gt.boxes_h[rows], boxes_o=gt.boxes_o[rows], object=gt.object[rows],
        class_object=gt.class_object, rare=gt.rare, non_rare=gt.non_rare, source=f"{gt.source}[:{len(keep)}]",
    )
