"""Fixtures of the serving tests: servers on the tiny model and simulated MJPEG cameras, all on 127.0.0.1.
Every server is shut down by its fixture, every wait has a timeout (helpers in serve_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))     # serve_helpers

from serve_helpers import tiny_config  # noqa: E402

FRAME_SIZE = (320, 240)


@pytest.fixture(scope="session")
def photo_rgb(photos) -> list[np.ndarray]:
    """The photos at one size, RGB, as a camera's frames."""
    from hoi_edge.pipeline.preprocess import load_image

    return [cv2.resize(load_image(p), FRAME_SIZE, interpolation=cv2.INTER_AREA) for p in photos]


@pytest.fixture(scope="session")
def photo_jpegs(photo_rgb) -> list[bytes]:
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            for f in photo_rgb]


@pytest.fixture
def make_app(tiny_checkpoint):
    """``make_app(**config)``: an app on the tiny checkpoint; every app made is closed after the test."""
    from hoi_edge.serve.app import create_app

    apps = []

    def make(**kw):
        app = create_app(tiny_config(tiny_checkpoint, **kw))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.state.close()
