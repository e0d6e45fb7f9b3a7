"""Artifacts of the tiny model, exported once per session (ExecuTorch lowering is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_cache import export_cached

from compress.calibration import CalibrationConfig
from targets.export import ExportConfig

CALIB_IMAGES = 6


@pytest.fixture(scope="session")
def calibration(shared_data) -> CalibrationConfig:
    return CalibrationConfig(shared_data / "photos", max_images=CALIB_IMAGES)


@pytest.fixture(scope="session")
def artifact_factory(tmp_path_factory, tiny_checkpoint, calibration):
    """Export (target, precision) on first request; later requests reuse the folder."""
    root = tmp_path_factory.mktemp("artifacts")
    made: dict[tuple[str, str], Path] = {}

    def get(target: str, precision: str) -> Path:
        key = (target, precision)
        if key not in made:
            made[key] = export_cached(ExportConfig(
                checkpoint=tiny_checkpoint, target=target, out=root / f"{target}-{precision}", precision=precision,
                calibration=calibration if precision == "int8" else None), progress=False)
        return made[key]

    return get
