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
