"""Fixtures for the evaluator tests: the shared HICO-DET data, read in place (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoi_edge.eval import GroundTruth, load_groundtruth

# tests/eval/conftest.py -> parents[2] is the repo root; shared/ sits next to it.
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared HICO-DET data not found at {path.resolve()} (expected ../shared/data next to the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``<repo>/../shared/data``; tests that need it skip when it is absent."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def hicodet_dir(shared_data_dir: Path) -> Path:
    return _require(shared_data_dir / "hicodet")


@pytest.fixture(scope="session")
def test_gt_path(hicodet_dir: Path) -> Path:
    return _require(hicodet_dir / "instances_test2015.json")


@pytest.fixture(scope="session")
def splits_path(hicodet_dir: Path) -> Path:
    return _require(hicodet_dir / "splits.json")


@pytest.fixture(scope="session")
def real2_gt_path(hicodet_dir: Path) -> Path:
    """The 2 real test images' GT (per-image 'images' layout)."""
    return _require(hicodet_dir / "real_test_images" / "annotations.json")


@pytest.fixture(scope="session")
def full_gt(test_gt_path: Path) -> GroundTruth:
    """The full HICO-DET test GT (9,658 images, 33,405 pairs), loaded once per session."""
    return load_groundtruth(test_gt_path)
