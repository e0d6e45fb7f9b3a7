"""`hoi-edge detect` on images and videos, with drawn output and clear errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner

from hoi_edge.cli import main


def test_detect_image_writes_annotated_image_and_json(tiny_checkpoint, shared_data, tmp_path):
    src = shared_data / "photos" / "zidane.jpg"
    out, js = tmp_path / "annotated.jpg", tmp_path / "dets.jsonl"
    res = CliRunner().invoke(main, ["detect", str(src), "--model", str(tiny_checkpoint), "--out", str(out),
                                    "--json", str(js), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert "frame 0:" in res.output and "human=[" in res.output
    drawn, original = cv2.imread(str(out)), cv2.imread(str(src))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).sum() > 1000     # boxes and labels were drawn
    record = json.loads(js.read_text().splitlines()[0])
    assert record["frame"] == 0 and len(record["detections"]) > 0
    assert set(record["detections"][0]) >= {"human_box", "object_box", "verb", "object_label", "hoi", "score"}


def test_detect_video(tiny_checkpoint, shared_data, tmp_path):
    video = tmp_path / "clip.avi"
    frame = cv2.imread(str(shared_data / "photos" / "bus.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    for shift in range(3):
        writer.write(np.roll(frame, shift * 10, axis=1))
    writer.release()
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(main, ["detect", str(video), "--model", str(tiny_checkpoint), "--out", str(out),
                                    "--max-frames", "2"])
    assert res.exit_code == 0, res.output
    assert "frame 1:" in res.output and "frame 2:" not in res.output
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 2


def test_detect_errors_are_one_line(tiny_checkpoint, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    res = CliRunner().invoke(main, ["detect", str(bad), "--model", str(tiny_checkpoint)])
    assert res.exit_code == 1 and "cannot decode image" in res.output and "broken.png" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "broken_hoi.png").exists()
    res = CliRunner().invoke(main, ["detect", str(tmp_path / "none.jpg"), "--model", str(tiny_checkpoint)])
    assert res.exit_code == 1 and "input not found" in res.output
    res = CliRunner().invoke(main, ["detect", str(bad), "--model", str(tmp_path / "missing.pt")])
    assert res.exit_code == 1 and "checkpoint not found" in res.output


def test_drawing_marks_boxes_or_says_nothing_was_found(shared_data):
    from hoi_edge.draw import draw_detections
    from hoi_edge.postprocess import HOIDetection
    from hoi_edge.preprocess import load_image

    image = load_image(shared_data / "photos" / "zidane.jpg")
    det = HOIDetection(human_box=(100.0, 200.0, 600.0, 700.0), object_box=(700.0, 300.0, 900.0, 500.0),
                       object_label="cup", object_index=0, verb="hold", verb_index=0, hoi=0, hoi_name="hold cup",
                       score=0.8, human_score=0.9, object_score=0.9)
    drawn = draw_detections(image, [det])
    assert (drawn[200:700, 100:103] != image[200:700, 100:103]).any()              # human box edge
    assert (drawn[300:500, 700:703] != image[300:500, 700:703]).any()              # object box edge
    empty = draw_detections(image, [det], min_score=0.9)
    assert (empty[:20, :200] != image[:20, :200]).any()                            # "no HOI triplets found"
    assert (empty[200:700, 100:103] == image[200:700, 100:103]).all()


class _FakeCamera:
    """Stands in for cv2.VideoCapture(index): endless frames of a real photo, as a webcam would give."""

    def __init__(self, frame):
        self.frame = frame

    def isOpened(self):
        return True

    def read(self):
        return True, self.frame.copy()

    def release(self):
        pass


def test_camera_recording_is_kept_when_the_user_stops_it(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    import hoi_edge.sources as sources
    from hoi_edge.pipeline import HOIDetector

    frame = cv2.imread(str(shared_data / "photos" / "bus.jpg"))
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(sources.cv2, "VideoCapture",   # cameras are opened by index, files by path
                        lambda what: _FakeCamera(frame) if isinstance(what, int) else real_capture(what))
    calls = {"n": 0}
    predict = HOIDetector.predict

    def predict_then_ctrl_c(self, image):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt        # the user presses Ctrl-C while frame 4 is processed
        return predict(self, image)

    monkeypatch.setattr(HOIDetector, "predict", predict_then_ctrl_c)
    out, js = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    res = CliRunner().invoke(main, ["detect", "camera:0", "--model", str(tiny_checkpoint), "--out", str(out),
                                    "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "frame 2:" in res.output and "stopped" in res.output and f"wrote {out}" in res.output
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3 and len(js.read_text().splitlines()) == 3
    assert not list(tmp_path.glob(".live*"))                    # no temp files left behind


def test_interrupted_video_file_leaves_no_output(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    from hoi_edge.pipeline import HOIDetector

    video = tmp_path / "clip.avi"
    frame = cv2.imread(str(shared_data / "photos" / "bus.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    predict = HOIDetector.predict
    calls = {"n": 0}

    def predict_then_ctrl_c(self, image):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return predict(self, image)

    monkeypatch.setattr(HOIDetector, "predict", predict_then_ctrl_c)
    out = tmp_path / "out.mp4"
    res = CliRunner().invoke(main, ["detect", str(video), "--model", str(tiny_checkpoint), "--out", str(out)])
    assert res.exit_code != 0
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_bad_camera_specs_are_clear_errors(tiny_checkpoint, tmp_path, monkeypatch):
    res = CliRunner().invoke(main, ["detect", "camera:front", "--model", str(tiny_checkpoint)])
    assert res.exit_code == 1 and "camera index must be a number" in res.output
    assert "Traceback" not in res.output
    monkeypatch.chdir(tmp_path)
    (tmp_path / "7").write_bytes(b"not an image")             # an existing file named '7' is a file, not camera 7
    res = CliRunner().invoke(main, ["detect", "7", "--model", str(tiny_checkpoint)])
    assert res.exit_code == 1 and "cannot decode image" in res.output
