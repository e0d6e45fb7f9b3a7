"""FP32 OpenVINO and ONNX exports of the tiny model for the device and streaming tests (ExecuTorch's
export is slow; its device rule is tested without an artifact)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))     # mjpeg_server


@pytest.fixture(scope="session")
def runtime_artifacts(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    from export_cache import export_cached

    from targets.export import ExportConfig

    root = tmp_path_factory.mktemp("runtime-artifacts")
    return {t: export_cached(ExportConfig(checkpoint=tiny_checkpoint, target=t, out=root / f"{t}-fp32"),
                             progress=False) for t in ("openvino", "onnx")}


@pytest.fixture(scope="session")
def photo_frames(photos):
    """The photos as RGB frames at one size, as a video's frames would be."""
    import cv2

    from hoi_edge.pipeline.preprocess import load_image

    return [cv2.resize(load_image(p), (160, 120)) for p in photos]
