"""``--cache-features DIR``: the frozen detector's and CLIP image tower's outputs, computed once per image.

The detector and the CLIP image tower never change during training, so their outputs
(:class:`train.forward.FrozenOutputs`) are computed once and read back memory-mapped every epoch;
an epoch then runs only instance selection, the HOI head and the text tower.

Layout::

    DIR/manifest.json            key (weights + pre-processing fingerprint), images, completed shards
    DIR/shard-00000/<field>.npy  one float32 array per FrozenOutputs field, one row per image

Writing is atomic and resumable: a shard is written into a hidden temp folder and renamed when
whole (:func:`hoi_edge.core.atomic.atomic_directory`), then listed in the manifest (replaced atomically).
An interrupted build leaves only complete shards; the next run computes the missing ones. Under
torchrun every rank computes its share of the shards (shard ``i`` on rank ``i % world``) and rank
0 alone writes the manifest, between barriers.

A cache is refused, in one line, when the frozen weights (sha256 of the detector's and CLIP image
tower's state dicts), the pre-processing (sizes, normalisation, resize mode), or an image (byte
size) differ from what it was built with. The cache holds every image of the annotation file that
has a pair, so one cache serves every zero-shot split of that file. Random flips cannot be
honoured (the cache holds unflipped images), so they are switched off and the user is told.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from hoi_edge.core.atomic import atomic_directory, atomic_write_text
from hoi_edge.core.errors import InputFileError
from hoi_edge.core.jsonio import read_json_object
from hoi_edge.data.hico_json import HicoImage
from hoi_edge.pipeline.spec import PipelineSpec
from hoi_edge.runtime.torch_runner import pipeline_spec
from train import distributed
from train.dataset import HICODataset
from train.forward import FROZEN_FIELDS, CachedSample, FrozenEncoder, FrozenOutputs

FORMAT = 1
MANIFEST = "manifest.json"
SHARD_SIZE = 256
# pipeline facts applied *after* the cached networks (selection, scoring): they do not stale a cache
_AFTER_CACHE = ("scoring", "max_instances", "box_score_threshold", "nms_threshold", "max_detections",
                "detector_classes", "detector_score_kind")


def weights_fingerprint(encoder: FrozenEncoder) -> str:
    """sha256 over the names, dtypes, shapes and bytes of the detector's and CLIP image tower's tensors."""
    h = hashlib.sha256()
    for prefix, module in (("detector.", encoder.model.detector), ("clip.visual.", encoder.model.clip.visual)):
        for name, t in sorted(module.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{prefix}{name}|{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def preprocess_fingerprint(encoder: FrozenEncoder) -> dict[str, Any]:
    """The pre-processing part of the cache key of ``encoder``'s model (:func:`preprocess_key`)."""
    return preprocess_key(pipeline_spec(encoder.model))


def preprocess_key(spec: PipelineSpec) -> dict[str, Any]:
    """What decides the networks' inputs: sizes, normalisation, resize and channel order (the pipeline spec
    without the facts used after them); plus the flip state (never flipped)."""
    key = {k: v for k, v in spec.to_dict().items() if k not in _AFTER_CACHE}
    key["hflip"] = False
    return json.loads(json.dumps(key))                # tuples -> lists, as read back from JSON


@dataclass(frozen=True)
class CacheImage:
    filename: str
    height: int
    width: int
    nbytes: int                    # file size: an image replaced under the same name stales the cache


class FeatureCache:
    """An opened cache folder: the manifest plus lazily memory-mapped shards (per process)."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.root, self.manifest = root, manifest
        self.images = [CacheImage(*row) for row in manifest["images"]]
        self.shard_size = int(manifest["shard_size"])
        self.index = {im.filename: i for i, im in enumerate(self.images)}
        self._maps: dict[int, dict[str, np.ndarray]] = {}

    @property
    def num_shards(self) -> int:
        return -(-len(self.images) // self.shard_size)

    @property
    def completed(self) -> set[int]:
        return {int(i) for i in self.manifest["shards"]}

    def shard_dir(self, shard: int) -> Path:
        return self.root / f"shard-{shard:05d}"

    def rows(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, len(self.images)))

    def read(self, filename: str) -> tuple[FrozenOutputs, tuple[int, int]]:
        """The cached outputs of one image (copied out of the memory map) and its (height, width)."""
        i = self.index[filename]
        shard, row = divmod(i, self.shard_size)
        maps = self._maps.get(shard)
        if maps is None:
            maps = self._maps[shard] = {f: np.load(self.shard_dir(shard) / f"{f}.npy", mmap_mode="r")
                                        for f in FROZEN_FIELDS}
        im = self.images[i]
        return FrozenOutputs(**{f: np.array(maps[f][row]) for f in FROZEN_FIELDS}), (im.height, im.width)

    def __getstate__(self) -> dict[str, Any]:       # DataLoader workers map the shards themselves
        return {**self.__dict__, "_maps": {}}


class CachedDataset:
    """A :class:`HICODataset` whose items are :class:`CachedSample` (targets + cached frozen outputs)."""

    def __init__(self, dataset: HICODataset, cache: FeatureCache) -> None:
        self.dataset, self.cache = dataset, cache
        self.unseen, self.annotations = dataset.unseen, dataset.annotations

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> CachedSample:
        ann: HicoImage = self.dataset.annotations[index]
        frozen, hw = self.cache.read(ann.filename)
        return CachedSample(frozen, hw, ann)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def check_vocabulary(self, hoi_object: np.ndarray) -> None:
        self.dataset.check_vocabulary(hoi_object)


def cached_dataset(dataset: HICODataset, encoder: FrozenEncoder, folder: str | Path,
                   env: distributed.DistEnv | None = None, batch_size: int = 8, num_workers: int = 0,
                   notify: Callable[[str], None] = print) -> CachedDataset:
    """Open (building what is missing of) the cache in ``folder`` for ``dataset``; refuse a stale one."""
    env = env or distributed.current()
    if dataset.hflip:
        notify("--cache-features: random horizontal flips are off (the cache holds the features of unflipped "
               "images); pass --no-hflip to silence this")
    cache = build_cache(dataset, encoder, folder, env, batch_size, num_workers)
    missing = [a.filename for a in dataset.annotations if a.filename not in cache.index]
    if missing:
        raise InputFileError(f"feature cache {folder} does not hold {len(missing)} image(s) of "
                             f"{dataset.annotation_file}: {missing[:3]}; delete it or give another --cache-features "
                             "folder")
    return CachedDataset(dataset, cache)


def build_cache(dataset: HICODataset, encoder: FrozenEncoder, folder: str | Path,
                env: distributed.DistEnv | None = None, batch_size: int = 8, num_workers: int = 0,
                shard_size: int = SHARD_SIZE) -> FeatureCache:
    """Compute the shards ``folder`` lacks (this rank's share of them) and return the opened cache."""
    env = env or distributed.current()
    root = Path(folder)
    source = _source_dataset(dataset)
    if env.is_main:
        _tidy(root, _open_or_start(root, encoder, source, shard_size))
    distributed.barrier(env)
    cache = FeatureCache(root, read_json_object(root / MANIFEST, "feature cache manifest"))
    todo = [s for s in range(cache.num_shards) if s not in cache.completed and s % env.world_size == env.rank]
    if todo:
        bar = tqdm(total=sum(len(cache.rows(s)) for s in todo), desc="caching features", unit="img",
                   dynamic_ncols=True, disable=not env.is_main)
        try:
            for shard in todo:
                _write_shard(cache, shard, source, encoder, batch_size, num_workers, bar)
                if env.world_size == 1:        # alone: list each shard as soon as it is whole
                    _list_shards(cache, cache.completed | {shard})
        finally:
            bar.close()
    distributed.barrier(env)
    if env.is_main and env.world_size > 1:
        _list_shards(cache, {s for s in range(cache.num_shards) if cache.shard_dir(s).is_dir()})
    distributed.barrier(env)
    return FeatureCache(root, read_json_object(root / MANIFEST, "feature cache manifest"))


def _source_dataset(dataset: HICODataset) -> HICODataset:
    """Every image of the annotation file that has a pair, unflipped: what the cache holds (split-independent)."""
    annotated = [a for a in dataset.all_annotations if a.num_pairs]
    return HICODataset(dataset.annotation_file, dataset.image_dir, hflip=False, annotations=annotated)


def _image_rows(source: HICODataset) -> list[list[Any]]:
    """[file name, height, width, bytes] per image; height/width are filled in as shards complete."""
    return [[a.filename, None, None, (source.image_dir / a.filename).stat().st_size] for a in source.annotations]


def _open_or_start(root: Path, encoder: FrozenEncoder, source: HICODataset, shard_size: int) -> dict[str, Any]:
    """The manifest of ``root``, checked against these weights, pre-processing and images; a new one if none."""
    key = {"weights_sha256": weights_fingerprint(encoder), "preprocess": preprocess_fingerprint(encoder)}
    rows = _image_rows(source)
    path = root / MANIFEST
    if not path.is_file():
        if root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise InputFileError(f"feature cache folder {root} is not empty and has no {MANIFEST}; "
                                 "give an empty or new folder")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {"format": FORMAT, **key, "shard_size": shard_size, "fields": list(FROZEN_FIELDS),
                    "images": rows, "shards": []}
        atomic_write_text(path, json.dumps(manifest))
        return manifest
    manifest = read_json_object(path, "feature cache manifest")
    fix = "delete it or give another --cache-features folder"
    if manifest.get("format") != FORMAT or manifest.get("fields") != list(FROZEN_FIELDS):
        raise InputFileError(f"feature cache {root} has another layout (format {manifest.get('format')}); {fix}")
    if manifest.get("weights_sha256") != key["weights_sha256"]:
        raise InputFileError(f"feature cache {root} is stale: it was built with other detector/CLIP weights "
                             f"(sha256 {str(manifest.get('weights_sha256'))[:12]}, now "
                             f"{key['weights_sha256'][:12]}); {fix}")
    if manifest.get("preprocess") != key["preprocess"]:
        old, new = manifest.get("preprocess") or {}, key["preprocess"]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise InputFileError(f"feature cache {root} is stale: it was built with other pre-processing "
                             f"({', '.join(diff)} differ); {fix}")
    cached = {r[0]: r[3] for r in manifest["images"]}
    for name, _, _, nbytes in rows:
        if name in cached and cached[name] != nbytes:
            raise InputFileError(f"feature cache {root} is stale: image {source.image_dir / name} changed since "
                                 f"it was cached ({cached[name]} -> {nbytes} bytes); {fix}")
    return manifest


def _tidy(root: Path, manifest: dict[str, Any]) -> None:
    """After an interruption: list the whole shards the manifest missed, remove temp folders and broken shards.

    A ``shard-*`` folder appears only by renaming a finished temp folder, so an unlisted one is whole unless
    something else touched it; it is adopted when every array has its rows, else removed and recomputed.
    """
    cache = FeatureCache(root, manifest)
    listed = cache.completed
    for p in sorted(root.iterdir()):
        if not p.is_dir():
            continue
        if p.name.startswith(".shard-"):
            shutil.rmtree(p, ignore_errors=True)
        elif p.name.startswith("shard-") and p.name[6:].isdigit() and int(p.name[6:]) not in listed:
            shard = int(p.name[6:])
            if shard < cache.num_shards and _whole(cache, shard):
                listed.add(shard)
            else:
                shutil.rmtree(p, ignore_errors=True)
    if listed != cache.completed:
        _list_shards(cache, listed)


def _whole(cache: FeatureCache, shard: int) -> bool:
    n = len(cache.rows(shard))
    try:
        sizes = json.loads((cache.shard_dir(shard) / "sizes.json").read_text())
        return len(sizes) == n and all(
            np.load(cache.shard_dir(shard) / f"{f}.npy", mmap_mode="r").shape[0] == n for f in FROZEN_FIELDS)
    except (OSError, ValueError):
        return False


class _Images:
    """The RGB images of some cache rows (by file name), for a DataLoader that decodes in worker processes."""

    def __init__(self, source: HICODataset, names: Sequence[str]) -> None:
        self.source, self.names = source, list(names)
        self.position = {a.filename: i for i, a in enumerate(source.annotations)}

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.source[self.position[self.names[i]]].image


def _write_shard(cache: FeatureCache, shard: int, source: HICODataset, encoder: FrozenEncoder, batch_size: int,
                 num_workers: int, bar: tqdm) -> None:
    """Compute one shard and publish it whole (temp folder, then rename)."""
    names = [cache.images[r].filename for r in cache.rows(shard)]
    loader = DataLoader(_Images(source, names), batch_size=batch_size, collate_fn=list, num_workers=num_workers)
    outputs: list[FrozenOutputs] = []
    sizes: list[list[int]] = []
    for images in loader:
        outputs += encoder(images)
        sizes += [list(image.shape[:2]) for image in images]
        bar.update(len(images))
    with atomic_directory(cache.shard_dir(shard)) as tmp:
        for f in FROZEN_FIELDS:
            np.save(tmp / f"{f}.npy", np.stack([getattr(o, f) for o in outputs]).astype(np.float32))
        (tmp / "sizes.json").write_text(json.dumps(sizes))


def _list_shards(cache: FeatureCache, shards: set[int]) -> None:
    """Rewrite the manifest (atomically) with ``shards`` completed and the image sizes their folders record."""
    manifest = dict(cache.manifest)
    images = [list(r) for r in manifest["images"]]
    for s in sorted(shards):
        sizes = json.loads((cache.shard_dir(s) / "sizes.json").read_text())
        for r, (h, w) in zip(cache.rows(s), sizes):
            images[r][1], images[r][2] = h, w
    manifest["images"], manifest["shards"] = images, sorted(shards)
    atomic_write_text(cache.root / MANIFEST, json.dumps(manifest))
    cache.manifest = manifest
