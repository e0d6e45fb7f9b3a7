"""Atomic outputs: a file or folder appears whole under its final name, or not at all.

Each is written under a temporary name beside its destination (same file system, so the
final step is a rename) and removed on any failure. A file is flushed to disk (``fsync``)
before its rename, so a crash or power loss cannot leave a renamed but empty file. A folder
that replaces an existing one is swapped in with one atomic exchange (Linux ``renameat2``
``RENAME_EXCHANGE``; elsewhere two renames): at every instant the destination holds the old
folder or the new one, also for a process killed in between.

Temp names carry the writer's process id (``.NAME.tmp-PID-...``, ``.NAME.partial-PID-...``): a
process killed with SIGKILL cannot clean up after itself, so the next write to the same
destination removes the temps of writers that are no longer running. Temp files and folders are
created private (0600 / 0700); they get the permissions a plain ``open``/``mkdir`` would have given
(0666 / 0777 less the umask) before the rename, so outputs are readable as usual.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|partial)-(\d+)-")
_swept: set[Path] = set()


def sweep_stale(dest: Path) -> list[Path]:
    """Remove the temps that killed writers left in ``dest``'s folder (see the module notes); returns them.
    Each folder is swept once per process (a folder run writes thousands of files into one)."""
    folder = dest.parent.resolve()
    if folder in _swept:
        return []
    _swept.add(folder)
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            m = _TEMP_NAME.match(entry.name)
            if m is None or int(m.group(1)) == os.getpid() or _alive(int(m.group(1))):
                continue
            p = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers pick the format); rename on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _fsync(Path(tmp))
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


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system or the file system does not offer it (the caller then falls back to two renames)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; on success it replaces ``path`` (an existing one is swapped
    out in one atomic exchange, then removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-{os.getpid()}-", dir=path.parent))
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file():
                _fsync(f)
        if path.exists():
            tmp.chmod(0o777 & ~_umask())
            if exchange(tmp, path):          # path: the new folder; tmp: the old one
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = path.with_name(f".{path.name}.partial-{os.getpid()}-old")
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
