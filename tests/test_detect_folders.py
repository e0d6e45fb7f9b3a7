"""Folder and glob runs of `hoi-edge detect` never lose a user's work: a bad image is reported (file and reason)
and skipped, the others are processed and their JSON lines written as each finishes; the run ends non-zero with
a count; --fail-fast stops at the first; Ctrl-C keeps what finished and exits 130. The console shows one line
per image or frame with a counter, and scores as the drawing does. A planted detector (test_detect_io) makes
every run instant and its detections known."""

from __future__ import annotations

import json

import cv2
import pytest
from click.testing import CliRunner
from test_detect_io import SCORES, _frame_bgr, _planted, _write_video

import hoi_edge.loader
from hoi_edge.cli import main


@pytest.fixture
def planted(monkeypatch):
    detector, runner = _planted()
    monkeypatch.setattr(hoi_edge.loader, "open_detector", lambda **kwargs: detector)
    return detector


@pytest.fixture
def folder(tmp_path):
    """a, d, e: good images; b: a corrupt JPEG; c: a text file named .png."""
    images = tmp_path / "photos"
    images.mkdir()
    for name in ("a.png", "d.jpg", "e.png"):
        cv2.imwrite(str(images / name), _frame_bgr())
    (images / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "c.png").write_text("hello, I am text\n")
    return images


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_folder_with_bad_files_processes_every_good_image(planted, folder, tmp_path):
    js, out = tmp_path / "preds.jsonl", tmp_path / "annotated"
    res = CliRunner().invoke(main, ["detect", str(folder), "--json", str(js), "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert [r["image"] for r in _lines(js)] == ["a.png", "d.jpg", "e.png"]       # every good image, in order
    assert all(len(r["detections"]) == len(SCORES) for r in _lines(js))
    skipped = [line for line in res.output.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2 and str(folder / "b.jpg") in skipped[0] and str(folder / "c.png") in skipped[1]
    assert all("cannot decode image" in line for line in skipped)
    assert "2 of 5 images could not be read" in res.output and "the other 3 were processed" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["a_hoi.png", "d_hoi.jpg", "e_hoi.png"]   # no temp files
    assert "[5/5] e.png: 2 HOI triplets" in res.output                          # a counter on every line


def test_a_glob_run_behaves_the_same(planted, folder, tmp_path):
    js = tmp_path / "preds.jsonl"
    res = CliRunner().invoke(main, ["detect", str(folder / "*.png"), "--json", str(js), "--no-draw"])
    assert res.exit_code == 1 and "1 of 3 images could not be read" in res.output, res.output
    assert [r["image"] for r in _lines(js)] == ["a.png", "e.png"]


def test_fail_fast_stops_at_the_first_bad_image_and_keeps_the_lines_before_it(planted, folder, tmp_path):
    js = tmp_path / "preds.jsonl"
    res = CliRunner().invoke(main, ["detect", str(folder), "--json", str(js), "--no-draw", "--fail-fast"])
    assert res.exit_code == 1 and "cannot decode image" in res.output and "b.jpg" in res.output, res.output
    assert "c.png" not in res.output and "e.png" not in res.output
    assert [r["image"] for r in _lines(js)] == ["a.png"]


def test_ctrl_c_keeps_the_finished_images_and_exits_130(planted, folder, tmp_path, monkeypatch):
    calls = {"n": 0}
    run = type(planted).run

    def run_then_ctrl_c(self, image):
        calls["n"] += 1
        if calls["n"] == 3:                # the third good image: a, d done
            raise KeyboardInterrupt
        return run(self, image)

    monkeypatch.setattr(type(planted), "run", run_then_ctrl_c)
    js, out = tmp_path / "preds.jsonl", tmp_path / "annotated"
    res = CliRunner().invoke(main, ["detect", str(folder), "--json", str(js), "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert [r["image"] for r in _lines(js)] == ["a.png", "d.jpg"]
    assert sorted(p.name for p in out.iterdir()) == ["a_hoi.png", "d_hoi.jpg"]
    assert "interrupted after 4 of 5 images; finished results kept" in res.output and str(js) in res.output


def test_a_video_prints_one_line_per_frame_with_a_counter(planted, tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video, frames=3, fps=5)
    res = CliRunner().invoke(main, ["detect", str(video), "--no-draw"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "HOI triplets" in line]
    assert [line.split()[0] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "human=[" not in res.output                  # no per-triplet list for every frame
    best = max(SCORES.values())
    assert all(f"best {best:.2f} hold cup" in line for line in lines), lines


def test_scores_print_as_the_drawing_shows_them():
    """A score of 9.3e-06 was printed 0.000 while the image said 9.3e-06: one format for both."""
    from hoi_edge.cli import _triplet
    from hoi_edge.pipeline.draw import format_score
    from hoi_edge.pipeline.postprocess import HOIDetection

    det = HOIDetection(human_box=(0, 0, 1, 1), object_box=(0, 0, 1, 1), object_label="cup", object_index=0,
                       verb="drink_with", verb_index=0, hoi=0, hoi_name="drink_with cup", score=9.3e-06,
                       human_score=1.0, object_score=1.0)
    assert _triplet(det) == "9.3e-06 drink with cup" and format_score(det.score) == "9.3e-06"


def test_json_lines_are_whole_from_the_first_line(tmp_path):
    from hoi_edge.pipeline.detect import JsonLines

    path = tmp_path / "out.jsonl"
    lines = JsonLines(path)
    lines.write({"image": "a.jpg", "detections": [{"score": 0.5}] * 2000})      # ~30 KB: several pages
    assert path.read_bytes().endswith(b"\n") and len(_lines(path)) == 1          # on disk before close
    lines.write({"image": "b.jpg", "detections": []})
    lines.close()
    assert [r["image"] for r in _lines(path)] == ["a.jpg", "b.jpg"]
    empty = JsonLines(tmp_path / "none.jsonl")
    empty.close()
    assert (tmp_path / "none.jsonl").read_text() == ""


KILL_CHILD = """
import signal
import hoi_edge.loader
from hoi_edge.cli import main
from killer import kill_point
from test_detect_io import _planted

# Ctrl-C raises KeyboardInterrupt, as in a terminal, even when this test runs as a background job (which
# starts with SIGINT ignored, and Python then installs no handler)
signal.signal(signal.SIGINT, signal.default_int_handler)
detector, _ = _planted()
hoi_edge.loader.open_detector = lambda **kwargs: detector
if {nth}:
    kill_point([(type(detector), "run")], {nth}, "before", {marker!r})
main(["detect", {folder!r}, "--json", {js!r}, "--out", {out!r}])
"""


def _many_images(folder, n):
    folder.mkdir()
    ok, encoded = cv2.imencode(".png", _frame_bgr())
    for i in range(n):
        (folder / f"img{i:04d}.png").write_bytes(encoded.tobytes())


def test_sigkill_in_a_folder_run_leaves_every_finished_line_whole(tmp_path):
    """Killed before its 4th image: the JSON lines of the 3 finished ones are there, whole (the old writer kept
    them in a temp file until the end, so SIGKILL left nothing)."""
    from killer import run_and_kill

    images, js, out, marker = tmp_path / "images", tmp_path / "p.jsonl", tmp_path / "out", tmp_path / "marker"
    _many_images(images, 6)
    result = run_and_kill(KILL_CHILD.format(nth=4, marker=str(marker), folder=str(images), js=str(js), out=str(out)),
                          ready=marker.exists)
    assert result.killed, result.output
    assert js.read_bytes().endswith(b"\n")
    assert [r["image"] for r in _lines(js)] == ["img0000.png", "img0001.png", "img0002.png"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "img0000_hoi.png", "img0001_hoi.png", "img0002_hoi.png"]


def test_sigkill_at_any_moment_leaves_only_whole_lines_and_whole_images(tmp_path):
    """Killed wherever it happens to be (once 5 lines are out): a readable prefix of lines, in order; every
    annotated image that exists decodes."""
    from killer import run_and_kill

    images, js, out = tmp_path / "images", tmp_path / "p.jsonl", tmp_path / "out"
    _many_images(images, 300)

    def five_lines() -> bool:
        return js.exists() and js.read_bytes().count(b"\n") >= 5

    result = run_and_kill(KILL_CHILD.format(nth=0, marker="", folder=str(images), js=str(js), out=str(out)),
                          ready=five_lines)
    assert result.killed, result.output
    data = js.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    names = [json.loads(line)["image"] for line in whole.splitlines()]
    assert names == [f"img{i:04d}.png" for i in range(len(names))] and 5 <= len(names) < 300    # killed mid-run
    assert data == whole, "a line was cut: the writer must write each line in one piece"
    for p in out.iterdir():
        if not p.name.startswith("."):
            assert cv2.imread(str(p)) is not None, p


def test_ctrl_c_as_a_real_signal_exits_130_with_the_finished_lines(tmp_path):
    """SIGINT (what Ctrl-C sends) to a folder run: the finished lines stay, the run says how far it got, exit 130."""
    import signal

    from killer import run_and_kill

    images, js, out, marker = tmp_path / "images", tmp_path / "p.jsonl", tmp_path / "out", tmp_path / "marker"
    _many_images(images, 6)
    result = run_and_kill(KILL_CHILD.format(nth=4, marker=str(marker), folder=str(images), js=str(js), out=str(out)),
                          ready=marker.exists, sig=signal.SIGINT)
    assert result.killed and result.returncode == 130, result.output
    assert "interrupted after 3 of 6 images; finished results kept" in result.output, result.output
    assert [r["image"] for r in _lines(js)] == ["img0000.png", "img0001.png", "img0002.png"]
