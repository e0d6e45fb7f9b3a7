"""The documentation site builds with ``mkdocs build --strict`` (every page in the nav, every link and anchor
resolving), and the README's links point at files that exist."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("mkdocs is not installed: it is part of the dev extras (pip install -e '.[dev]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=REPO, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    pages = {p.stem for p in (REPO / "docs").glob("*.md")}
    built = {p.parent.name if p.parent != tmp_path / "site" else "index" for p in (tmp_path / "site").rglob("index.html")}
    assert pages <= built, f"pages not in the built site: {sorted(pages - built)}"


def test_readme_links_resolve_and_it_stays_short() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    links = [m.group(1).split("#")[0] for m in re.finditer(r"\]\(([^)\s]+)\)", text)]
    local = [link for link in links if link and "://" not in link]
    assert len(local) >= 10, "the README should point into the docs"
    missing = [link for link in local if not (REPO / link).exists()]
    assert missing == []
    assert len(text.splitlines()) <= 160


def test_no_page_holds_an_unfilled_table_placeholder() -> None:
    """A benchmark's table is pasted where the page names its command; a placeholder left in (``EDGE_TABLE``)
    would publish a page whose numbers were never measured."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    left = {p.name: re.findall(r"^[A-Z0-9_]*TABLE[A-Z0-9_]*$", p.read_text(encoding="utf-8"), re.M) for p in pages}
    assert {name: found for name, found in left.items() if found} == {}
