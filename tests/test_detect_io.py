"""`detect` on images, videos and cameras with known answers: colour order, written fps and frame count, and what
--top / --min-score change, with a planted detector (hoi_edge.testing.PlantedRunner) so every detection is known.

Frames carry a red patch. OpenCV decodes and encodes BGR; the pipeline and the drawing work in RGB. A
frame left in BGR reaches the detector blue and comes out of the writer blue, so both are checked.
"""

from __future__ import annotations

import json
import math
import time

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from hoi_edge import HOIDetector
from hoi_edge.data.vocabulary import Vocabulary
from hoi_edge.pipeline.detect import DetectOptions, run_detect
from hoi_edge.pipeline.postprocess import ScoringParams
from hoi_edge.pipeline.spec import PipelineSpec
from hoi_edge.testing import PlantedRunner

W, H = 160, 96                                # frame size; the letterbox fills the 64 px input along W
DETECTOR_SIZE = 64
RED = (220, 20, 20)                           # RGB
GREY = (128, 128, 128)
PATCH = (slice(72, 92), slice(136, 156))      # rows, cols: away from the drawn boxes and labels
HUMAN_PX, CUP_PX = (16, 16, 64, 80), (96, 32, 128, 64)
VOCAB = Vocabulary.from_dict({"name": "io", "verbs": ["hold", "drink_with"], "objects": ["cup"],
                              "hois": [["hold", "cup"], ["drink_with", "cup"]]})
SCORING = ScoringParams(pair_scale=1.0, pair_bias=0.0, global_scale=1.0, global_bias=0.0, global_weight=0.0,
                        detector_score_power=1.0)
P_HUMAN, P_CUP = 0.9, 0.8
# score = sigmoid(pair logit) * s_human * s_object
SCORES = {"hold cup": 1 / (1 + math.exp(-2.0)) * P_HUMAN * P_CUP, "drink_with cup": 0.5 * P_HUMAN * P_CUP}


def _planted() -> tuple[HOIDetector, PlantedRunner]:
    logits = np.full((3, 3), -1e4, np.float32)                  # classes: person, cup, no-object
    logits[0, [0, 2]] = math.log(P_HUMAN), math.log(1 - P_HUMAN)
    logits[1, [1, 2]] = math.log(P_CUP), math.log(1 - P_CUP)
    logits[2, 2] = 0.0
    boxes = np.array([[40 / W, 48 / W, 48 / W, 64 / W],         # cx, cy, w, h of the input; the image spans W
                      [112 / W, 48 / W, 32 / W, 32 / W], [0.5, 0.5, 0.1, 0.1]], np.float32)
    runner = PlantedRunner(logits, boxes, np.zeros(4, np.float32), {(0, 1): np.array([2.0, 0.0, 0, 0], np.float32)})
    spec = PipelineSpec(detector_size=DETECTOR_SIZE, clip_size=32, clip_mean=(0.5, 0.5, 0.5),
                        clip_std=(0.25, 0.25, 0.25), detector_classes=("person", "cup"), max_instances=4,
                        box_score_threshold=0.5, nms_threshold=0.5, max_detections=10, scoring=SCORING)
    return HOIDetector(runner, spec, VOCAB, np.eye(2, 4, dtype=np.float32)), runner


def _frame_bgr() -> np.ndarray:
    frame = np.full((H, W, 3), GREY, np.uint8)
    frame[PATCH] = RED[::-1]
    return frame


def _write_video(path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    for _ in range(frames):
        writer.write(_frame_bgr())
    writer.release()


def _read_video(path) -> tuple[list[np.ndarray], float]:
    """RGB frames and the fps the container states."""
    cap = cv2.VideoCapture(str(path))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps


def _patch_colour(rgb: np.ndarray) -> np.ndarray:
    rows, cols = PATCH
    return np.median(rgb[rows.start + 4:rows.stop - 4, cols.start + 4:cols.stop - 4].reshape(-1, 3), axis=0)


def _detector_saw(runner: PlantedRunner) -> np.ndarray:
    """The patch's colour in the detector's first input, de-normalised to RGB 0..255."""
    (x,) = runner.received["detector"][0]
    s = DETECTOR_SIZE / W                                         # letterbox scale: 0.4
    rows = slice(math.ceil(PATCH[0].start * s) + 1, int(PATCH[0].stop * s) - 1)
    cols = slice(math.ceil(PATCH[1].start * s) + 1, int(PATCH[1].stop * s) - 1)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    pixels = x[0, :, rows, cols].reshape(3, -1).mean(1)
    return (pixels * std + mean) * 255


def _check_detections(records: list[dict]) -> None:
    for rec in records:
        dets = rec["detections"]
        assert [d["score"] for d in dets] == pytest.approx(list(SCORES.values()), rel=1e-5)
        for d in dets:
            assert d["human_box"] == pytest.approx(HUMAN_PX, abs=1e-3)
            assert d["object_box"] == pytest.approx(CUP_PX, abs=1e-3)


def test_video_colour_fps_frame_count_and_json(tmp_path):
    src, out, js = tmp_path / "clip.avi", tmp_path / "out.mp4", tmp_path / "dets.jsonl"
    _write_video(src, frames=5, fps=7)
    detector, runner = _planted()
    results = list(run_detect(detector, str(src), DetectOptions(out=str(out), json_out=str(js))))
    assert len(results) == 5
    assert np.abs(_detector_saw(runner) - RED).max() < 40, _detector_saw(runner)      # RGB reaches the model
    frames, fps = _read_video(out)
    assert len(frames) == 5 and fps == pytest.approx(7.0, abs=0.01)
    assert frames[0].shape == (H, W, 3)
    assert np.abs(_patch_colour(frames[-1]) - RED).max() < 40, _patch_colour(frames[-1])  # and leaves as red
    records = [json.loads(line) for line in js.read_text().splitlines()]
    assert len(records) == 5
    _check_detections(records)


def test_video_max_frames(tmp_path):
    src, out = tmp_path / "clip.avi", tmp_path / "out.mp4"
    _write_video(src, frames=5, fps=12)
    detector, _ = _planted()
    assert len(list(run_detect(detector, str(src), DetectOptions(out=str(out), max_frames=3)))) == 3
    frames, fps = _read_video(out)
    assert len(frames) == 3 and fps == pytest.approx(12.0, abs=0.01)


class _FakeCamera:
    """Stands in for cv2.VideoCapture(index): a webcam giving the patched frame (BGR, as OpenCV does) at 20 fps,
    though it claims 25 (as cameras do in low light)."""

    PERIOD = 0.05

    def __init__(self) -> None:
        self.reads = 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        self.reads += 1
        time.sleep(self.PERIOD)
        return True, _frame_bgr()

    def get(self, prop: int) -> float:
        return 25.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def grab(self) -> bool:
        return True

    def retrieve(self):
        return True, _frame_bgr()

    def release(self) -> None:
        pass


def test_camera_colour_and_frames(tmp_path, monkeypatch):
    import hoi_edge.data.sources as sources

    real_capture = cv2.VideoCapture
    monkeypatch.setattr(sources.cv2, "VideoCapture",        # cameras are opened by index, files by path
                        lambda what, *a, **k: _FakeCamera() if isinstance(what, int) else real_capture(what, *a, **k))
    detector, runner = _planted()
    out, js = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    results = list(run_detect(detector, "camera:0", DetectOptions(out=str(out), json_out=str(js), max_frames=6,
                                                                  pipeline=False)))
    assert len(results) == 6
    assert np.abs(_detector_saw(runner) - RED).max() < 40, _detector_saw(runner)
    frames, fps = _read_video(out)
    # the recording is tagged with the rate frames came at (20/s, slower under load), not the 25 a camera claims
    assert len(frames) == 6 and 8.0 <= fps <= 21.0, fps
    assert np.abs(_patch_colour(frames[0]) - RED).max() < 40, _patch_colour(frames[0])
    records = [json.loads(line) for line in js.read_text().splitlines()]
    assert len(records) == 6
    _check_detections(records)


@pytest.mark.parametrize("top, min_score, shown", [(10, 0.0, 2), (1, 0.0, 1), (10, 0.5, 1), (10, 0.9, 0)])
def test_top_and_min_score(tmp_path, monkeypatch, top, min_score, shown):
    """--top and --min-score choose the triplets printed (and drawn); the JSON keeps every detection (it feeds eval)."""
    import hoi_edge.loader
    from hoi_edge.cli import main

    src, js = tmp_path / "frame.png", tmp_path / "dets.jsonl"
    cv2.imwrite(str(src), _frame_bgr())
    detector, runner = _planted()
    monkeypatch.setattr(hoi_edge.loader, "open_detector", lambda **kwargs: detector)
    res = CliRunner().invoke(main, ["detect", str(src), "--out", str(tmp_path / "out.png"), "--json", str(js),
                                    "--top", str(top), "--min-score", str(min_score)])
    assert res.exit_code == 0, res.output
    assert np.abs(_detector_saw(runner) - RED).max() < 10, _detector_saw(runner)     # an image file decodes to RGB
    printed = [line for line in res.output.splitlines() if "human=[" in line]
    want = [name for name, score in SCORES.items() if score >= min_score][:top]
    assert len(printed) == shown == len(want)
    for line, name in zip(printed, want):
        assert name.replace("_", " ") in line and "human=[16,16,64,80]" in line and "object=[96,32,128,64]" in line
    records = [json.loads(line) for line in js.read_text().splitlines()]
    assert len(records) == 1
    _check_detections(records)
