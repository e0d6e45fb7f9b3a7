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
    assert "zidane.jpg:" in res.output and "human=[" in res.output
    drawn, original = cv2.imread(str(out)), cv2.imread(str(src))
    assert drawn.shape == original.shape
    assert np.abs(drawn.astype(int) - original.astype(int)).sum() > 1000     # boxes and labels were drawn
    record = json.loads(js.read_text().splitlines()[0])
    assert record["image"] == "zidane.jpg" and len(record["detections"]) > 0
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
    assert "clip_frame000001:" in res.output and "clip_frame000002:" not in res.output
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 2


def test_detect_errors_are_one_line(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                  # default outputs go to the working directory
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
    from hoi_edge.pipeline.draw import draw_detections
    from hoi_edge.pipeline.postprocess import HOIDetection
    from hoi_edge.pipeline.preprocess import load_image

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
    import hoi_edge.data.sources as sources
    from hoi_edge import HOIDetector

    frame = cv2.imread(str(shared_data / "photos" / "bus.jpg"))
    real_capture = cv2.VideoCapture
    monkeypatch.setattr(sources.cv2, "VideoCapture",   # cameras are opened by index, files by path
                        lambda what: _FakeCamera(frame) if isinstance(what, int) else real_capture(what))
    calls = {"n": 0}
    prepare = HOIDetector.prepare        # every frame starts here, on the synchronous and the pipelined path

    def prepare_then_ctrl_c(self, image):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt        # the user presses Ctrl-C while frame 4 is processed
        return prepare(self, image)

    monkeypatch.setattr(HOIDetector, "prepare", prepare_then_ctrl_c)
    out, js = tmp_path / "live.mp4", tmp_path / "live.jsonl"
    # --sync: one frame at a time, so exactly the 3 finished frames are kept (pipelined, the one in flight is lost)
    res = CliRunner().invoke(main, ["detect", "camera:0", "--model", str(tiny_checkpoint), "--out", str(out),
                                    "--json", str(js), "--sync"])
    assert res.exit_code == 0, res.output
    assert "camera0_frame000002:" in res.output and "stopped" in res.output and f"wrote {out}" in res.output
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3 and len(js.read_text().splitlines()) == 3
    assert not list(tmp_path.glob(".live*"))                    # no temp files left behind


def test_interrupted_video_file_leaves_no_output(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    from hoi_edge import HOIDetector

    video = tmp_path / "clip.avi"
    frame = cv2.imread(str(shared_data / "photos" / "bus.jpg"))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(3):
        writer.write(frame)
    writer.release()
    prepare = HOIDetector.prepare
    calls = {"n": 0}

    def prepare_then_ctrl_c(self, image):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return prepare(self, image)

    monkeypatch.setattr(HOIDetector, "prepare", prepare_then_ctrl_c)
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


def test_detect_folder_and_glob_write_lines_eval_reads(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    """detect FOLDER --json: one {image, detections} line per image, which `hoi-edge eval` reads as it is."""
    monkeypatch.chdir(tmp_path)
    hico = shared_data / "hicodet" / "real_test_images"
    preds = tmp_path / "preds.jsonl"
    res = CliRunner().invoke(main, ["detect", str(hico), "--model", str(tiny_checkpoint), "--json", str(preds)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["image"] for r in lines] == ["HICO_test2015_00000001.jpg", "HICO_test2015_00003124.jpg"]
    drawn = sorted(p.name for p in (tmp_path / "real_test_images_hoi").iterdir())     # in the working directory
    assert drawn == ["HICO_test2015_00000001_hoi.jpg", "HICO_test2015_00003124_hoi.jpg"]
    res = CliRunner().invoke(main, ["eval", "--gt", str(hico / "annotations.json"), "--pred", str(preds)])
    assert res.exit_code == 0, res.output
    assert "| Default |" in res.output and "warning" not in res.output                  # full coverage: no warning
    glob_preds = tmp_path / "glob.jsonl"
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "z*.jpg"), "--model",
                                    str(tiny_checkpoint), "--json", str(glob_preds), "--no-draw"])
    assert res.exit_code == 0, res.output
    assert [json.loads(x)["image"] for x in glob_preds.read_text().splitlines()] == ["zidane.jpg"]
    res = CliRunner().invoke(main, ["detect", str(shared_data / "photos" / "nothing*.jpg"), "--model",
                                    str(tiny_checkpoint)])
    assert res.exit_code == 1 and "no image matches" in res.output


def test_detect_without_out_writes_to_the_working_directory(tiny_checkpoint, shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = shared_data / "photos" / "bus.jpg"
    res = CliRunner().invoke(main, ["detect", str(src), "--model", str(tiny_checkpoint)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bus_hoi.jpg").is_file() and not (src.parent / "bus_hoi.jpg").exists()


def test_detect_rejects_conflicting_options_and_unwritable_outputs(tiny_checkpoint, shared_data, tmp_path):
    src = str(shared_data / "photos" / "bus.jpg")
    res = CliRunner().invoke(main, ["detect", src, "--model", str(tiny_checkpoint), "--artifact", str(tmp_path)])
    assert res.exit_code == 1 and "--model" in res.output and "--artifact" in res.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # the output check comes before the model is loaded: a missing checkpoint is not what is reported
    res = CliRunner().invoke(main, ["detect", src, "--model", str(tmp_path / "missing.pt"), "--out",
                                    str(blocker / "out.jpg")])
    assert res.exit_code == 1 and "cannot write --out" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["detect", src, "--json", str(blocker / "d.jsonl"), "--no-draw"])
    assert res.exit_code == 1 and "cannot write --json" in res.output


def test_drawn_scores_keep_significant_digits_and_labels_do_not_overlap(shared_data):
    from hoi_edge.pipeline.draw import LabelPlacer, draw_detections, format_score
    from hoi_edge.pipeline.postprocess import HOIDetection, Instances
    from hoi_edge.pipeline.preprocess import load_image

    assert format_score(0.0031) == "0.0031" and format_score(0.83) == "0.83" and format_score(0.0) == "0.00"
    placer = LabelPlacer(640, 480)
    boxes = [placer.place(10, 0, 120, 14) for _ in range(8)]        # eight labels wanted at the same spot
    rects = [(x, y, x + 120, y + 14) for x, y in boxes]
    assert all(0 <= y and y + 14 <= 480 for _, y, _, _ in rects)
    assert not any(a[1] < b[3] and b[1] < a[3] for i, a in enumerate(rects) for b in rects[i + 1:])
    image = load_image(shared_data / "photos" / "zidane.jpg")
    inst = Instances(boxes=np.array([[100, 200, 600, 700], [700, 300, 900, 500]], np.float32),
                     scores=np.array([0.9, 0.004], np.float32), classes=np.array([1, 47]),
                     objects=np.array([-1, 0]), human=np.array([True, False]), valid=np.array([True, True]),
                     features=np.zeros((2, 4), np.float32))
    det = HOIDetection(human_box=(100.0, 200.0, 600.0, 700.0), object_box=(700.0, 300.0, 900.0, 500.0),
                       object_label="cup", object_index=0, verb="hold", verb_index=0, hoi=0, hoi_name="hold cup",
                       score=0.8, human_score=0.9, object_score=0.9)
    names = ["n/a"] * 91
    names[1], names[47] = "person", "cup"
    no_triplet = draw_detections(image, [det], min_score=0.9, instances=inst, class_names=names)
    assert (no_triplet[200:700, 100:101] != image[200:700, 100:101]).any()     # the instances are drawn anyway
    assert (no_triplet[300:500, 700:701] != image[300:500, 700:701]).any()
