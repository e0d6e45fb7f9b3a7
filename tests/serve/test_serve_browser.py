"""The live page in a real browser: Debian's headless Chromium driven by Playwright (the system browser, no
download). It loads the page for a local MJPEG camera, sees boxes drawn on the frames, types a new
interaction and sees it in the triplet list, and sees an invalid one refused with ``bake``'s message."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from serve_helpers import live_server

from hoi_edge.pipeline.draw import HUMAN_COLOR
from hoi_edge.testing import MJPEGServer

CARD = "article.stream[data-id=s0]"


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def _near(image: np.ndarray, color: tuple[int, int, int], tol: int = 40) -> int:
    return int((np.abs(image.astype(np.int16) - np.array(color, np.int16)).max(axis=2) < tol).sum())


def test_the_page_draws_boxes_and_takes_a_typed_interaction(make_app, photo_rgb, photo_jpegs, tmp_path) -> None:
    from playwright.sync_api import sync_playwright

    from compress.bake import check_vocabulary
    from hoi_edge.core.errors import VocabularyError

    chromium = _chromium()
    raw = photo_rgb[0]
    jpeg = photo_jpegs[0]
    with MJPEGServer([jpeg], frames_per_connection=100_000, max_connections=3, fps=10) as camera:
        app = make_app(sources=[camera])
        with live_server(app) as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(30_000)
                page.goto(url + "/")
                page.wait_for_function(f"() => {{ const i = document.querySelector('{CARD} img.view');"
                                       " return i && i.complete && i.naturalWidth > 0; }")
                page.wait_for_function(f"() => document.querySelectorAll('{CARD} ol.triplets li').length > 0")
                shot = cv2.imdecode(np.frombuffer(page.locator(f"{CARD} img.view").screenshot(), np.uint8),
                                    cv2.IMREAD_COLOR)
                shot = cv2.resize(cv2.cvtColor(shot, cv2.COLOR_BGR2RGB), raw.shape[1::-1])

                page.fill("#vocab-text", "pet horse")
                page.click("#vocab-apply")
                page.wait_for_function("() => document.querySelector('#vocab-status').textContent.includes('is live')")
                page.wait_for_function(f"() => {{ const li = [...document.querySelectorAll('{CARD} ol.triplets li')];"
                                       " return li.length > 0"
                                       " && li.every(x => x.textContent.startsWith('pet horse')); }")

                page.fill("#vocab-text", "ride spaceship")
                page.click("#vocab-apply")
                page.wait_for_function("() => document.querySelector('#vocab-status').className.includes('bad')")
                refusal = page.inner_text("#vocab-status")
                still = page.locator(f"{CARD} ol.triplets li").all_inner_texts()
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            finally:
                browser.close()

    # boxes drawn: pixels far from the camera's frame, in the human box colour, which the frame itself lacks
    # (the frame's own JPEG round trip changes almost none by that much)
    changed = (np.abs(shot.astype(np.int16) - raw).max(axis=2) > 64).mean()
    requantised = cv2.imdecode(cv2.imencode(".jpg", raw, [cv2.IMWRITE_JPEG_QUALITY, 80])[1], cv2.IMREAD_COLOR)
    noise = (np.abs(requantised.astype(np.int16) - raw).max(axis=2) > 64).mean()
    assert changed > 0.01 > 10 * noise, (changed, noise)
    assert _near(shot, HUMAN_COLOR) > 200 > _near(raw, HUMAN_COLOR), (_near(shot, HUMAN_COLOR), _near(raw, HUMAN_COLOR))

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "live", "verbs": ["ride"], "objects": ["spaceship"],
                               "hois": [["ride", "spaceship"]]}))
    with pytest.raises(VocabularyError) as bake_error:
        check_vocabulary(app.state.engine.detector.spec.detector_classes, bad)
    assert refusal == str(bake_error.value).replace(str(bad), "vocabulary text")   # bake's, naming its source
    assert still and all(t.startswith("pet horse") for t in still)
