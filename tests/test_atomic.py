"""Atomic outputs: whole or absent, and with the permissions a plain write would give."""

from __future__ import annotations

import os
import stat

import pytest

from hoi_edge.core.atomic import atomic_directory, atomic_output, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_file_is_published_with_ordinary_permissions(tmp_path, umask_022):
    out = tmp_path / "sub" / "result.json"
    atomic_write_text(out, "{}\n")
    assert out.read_text() == "{}\n" and _mode(out) == 0o644      # not mkstemp's private 0600
    assert [p.name for p in out.parent.iterdir()] == ["result.json"]


def test_failed_file_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "annotated.jpg"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["annotated.jpg"]


def test_directory_replaces_old_one_whole_or_not_at_all(tmp_path, umask_022):
    out = tmp_path / "artifact"
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("first")
    assert _mode(out) == 0o755 and (out / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_directory(out) as tmp:
        (tmp / "b.txt").write_text("partial")
        raise RuntimeError("export failed")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]
    with atomic_directory(out) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]         # no .partial / .old folders left
