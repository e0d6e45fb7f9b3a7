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
def artifact_factory(request, tmp_path_factory, calibration):
    """Export (target, precision) of ``model`` on first request (a test model: 'tiny', or 'tiny_fastvit', the tiny
    model with a timm FastViT image tower; its ``<model>_checkpoint`` fixture); later requests reuse the folder."""
    root = tmp_path_factory.mktemp("artifacts")
    made: dict[tuple[str, str, str], Path] = {}

    def get(target: str, precision: str, model: str = "tiny") -> Path:
        key = (target, precision, model)
        if key not in made:
            made[key] = export_cached(ExportConfig(
                checkpoint=request.getfixturevalue(f"{model}_checkpoint"), target=target,
                out=root / f"{model}-{target}-{precision}", precision=precision,
                calibration=calibration if precision == "int8" else None), progress=False)
        return made[key]

    return get


@pytest.fixture(scope="session")
def reference_of(request):
    """``reference_of(model)``: the PyTorch pipeline of a test model (its ``<model>_detector`` fixture)."""
    return lambda model: request.getfixturevalue(f"{model}_detector")
