"""Atomic outputs: a file or folder appears whole under its final name, or not at all.

Each is written under a temporary name beside its destination (same file system, so the
final ``os.replace`` is a rename) and removed on any failure. Temp files and folders are
created private (0600 / 0700); they get the permissions a plain ``open``/``mkdir`` would
have given (0666 / 0777 less the umask) before the rename, so outputs are readable as usual.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from hoi_edge.core.errors import InputFileError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: Path, dest: Path) -> None:
    """Give ``tmp`` ordinary permissions and rename it to ``dest``."""
    tmp.chmod((0o777 if tmp.is_dir() else 0o666) & ~_umask())
    os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers pick the format); rename on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(Path(tmp), path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text handle on a temp file that replaces ``path`` only when the block succeeds."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding=encoding, newline="\n") as handle:
        yield handle


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; on success it replaces ``path`` (an existing one is removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            publish(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_writable(path: str | os.PathLike[str], what: str = "output") -> Path:
    """Fail now, in one line, if ``path`` (a file or folder to create) cannot be written: before
    minutes of work, not after. Probes the nearest existing folder with a real temp file (so
    read-only mounts, missing permissions and a file in the way are all caught); creates nothing."""
    path = Path(path)
    probe = path if path.is_dir() else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputFileError(f"cannot write {what} {path}: {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hoi-edge-write-test-", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputFileError(f"cannot write {what} {path}: {exc.strerror or exc} in {probe}") from None
    return path
