"""Pipelined video/camera inference: the synchronous detections, in order; a live source that falls behind
drops frames and counts them; network streams (MJPEG over HTTP on 127.0.0.1) reconnect with backoff."""

from __future__ import annotations

import time

import cv2
import pytest
from mjpeg_server import MJPEGServer

from hoi_edge import HOIDetector
from hoi_edge.core.errors import InputFileError
from hoi_edge.data.sources import Reconnect, Source, SourceStats, iter_frames
from hoi_edge.pipeline.stream import StreamStats, predict_stream, run_concurrent


def _key(dets):
    return [(d.hoi, d.score, tuple(d.human_box), tuple(d.object_box)) for d in dets]


@pytest.fixture(scope="module")
def photo_video(tmp_path_factory, photo_frames):
    path = tmp_path_factory.mktemp("video") / "photos.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in photo_frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.parametrize("target, throughput", [("openvino", False), ("openvino", True), ("onnx", False)])
def test_pipelined_video_equals_synchronous_frame_by_frame(runtime_artifacts, photo_video, target,
                                                           throughput) -> None:
    frames = list(iter_frames(Source.parse(str(photo_video))))
    assert len(frames) == 14
    sync_det = HOIDetector.from_artifact(runtime_artifacts[target])
    expected = [_key(sync_det.predict(f)) for f in frames]
    assert sum(map(len, expected)) > 0
    # throughput=True: OpenVINO compiled for several streams and run through AsyncInferQueue
    det = HOIDetector.from_artifact(runtime_artifacts[target], throughput=throughput) if throughput else sync_det
    for depth in (1, 3):
        stats = StreamStats()
        results = list(predict_stream(det, iter_frames(Source.parse(str(photo_video))), depth=depth, stats=stats))
        assert [r.index for r in results] == list(range(14))
        assert [_key(r.prediction.detections) for r in results] == expected
        assert stats.frames_done == stats.frames_read == 14 and stats.dropped == 0
    assert _key(run_concurrent(det, frames[5]).detections) == expected[5]


def test_the_pytorch_reference_pipelines_too(tiny_detector, photo_frames) -> None:
    frames = photo_frames[:4]
    expected = [_key(tiny_detector.predict(f)) for f in frames]
    assert [_key(r.prediction.detections) for r in predict_stream(tiny_detector, frames)] == expected


@pytest.mark.parametrize("target", ["openvino", "onnx"])
def test_several_streams_share_one_compiled_artifact(runtime_artifacts, photo_frames, target) -> None:
    """What ``hoi-edge serve`` does: one throughput-compiled artifact, a pipelined stream per thread. OpenVINO's
    AsyncInferQueue once handed two threads the same idle request ('Infer Request is busy')."""
    import threading

    frames = photo_frames[:6]
    det = HOIDetector.from_artifact(runtime_artifacts[target], throughput=True)
    expected = [_key(det.predict(f)) for f in frames]
    got, errors = {}, []

    def stream(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = [_key(r.prediction.detections) for r in predict_stream(det, frames, depth=3)]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and got == {i: expected for i in range(4)}


class _SlowRunner:
    """Wraps a runner, making each detector call slow: a pipeline that cannot keep up with the camera."""

    def __init__(self, runner, delay: float) -> None:
        self._runner, self._delay, self.name = runner, delay, runner.name

    def detector(self, images):
        time.sleep(self._delay)
        return self._runner.detector(images)

    def clip_image(self, images):
        return self._runner.clip_image(images)

    def hoi_head(self, *args):
        return self._runner.hoi_head(*args)


class _FakeCamera:
    """cv2.VideoCapture stand-in delivering ``n`` frames at ``fps``, as a live camera does."""

    def __init__(self, frames, n: int, fps: float) -> None:
        self.frames, self.n, self.period, self.i = frames, n, 1.0 / fps, 0

    def isOpened(self) -> bool:
        return True

    def read(self):
        if self.i >= self.n:
            return False, None
        time.sleep(self.period)
        self.i += 1
        return True, cv2.cvtColor(self.frames[self.i % len(self.frames)], cv2.COLOR_RGB2BGR)

    def release(self) -> None:
        pass


@pytest.mark.parametrize("pipelined", [True, False])
def test_a_camera_that_outruns_the_pipeline_drops_frames(runtime_artifacts, photo_frames, monkeypatch,
                                                         pipelined) -> None:
    det = HOIDetector.from_artifact(runtime_artifacts["onnx"])
    slow = HOIDetector(_SlowRunner(det.runner, 0.1), det.spec, det.vocab, det.text_embeddings)
    camera = _FakeCamera(photo_frames, n=40, fps=100)
    monkeypatch.setattr("hoi_edge.data.sources.open_capture", lambda source, reconnect=None: camera)
    stats = StreamStats()
    results = list(predict_stream(slow, iter_frames(Source.parse("camera:0")), pipelined=pipelined,
                                  drop_frames=True, stats=stats))
    indices = [r.index for r in results]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)     # in order, none twice
    assert stats.frames_read == 40 and stats.dropped > 10
    assert stats.frames_done == len(results) == 40 - stats.dropped
    # each processed frame is the frame the camera delivered at that index, with its own detections
    for r in results[:3]:
        assert _key(r.prediction.detections) == _key(det.predict(r.frame))


def test_detect_cli_reports_dropped_frames(runtime_artifacts, photo_frames, monkeypatch) -> None:
    from click.testing import CliRunner

    from hoi_edge.cli import main

    camera = _FakeCamera(photo_frames, n=30, fps=200)
    monkeypatch.setattr("hoi_edge.data.sources.open_capture", lambda source, reconnect=None: camera)
    res = CliRunner().invoke(main, ["detect", "camera:0", "--artifact", str(runtime_artifacts["openvino"]),
                                    "--drop-frames", "--no-draw"])
    assert res.exit_code == 0, res.output
    assert "frames processed" in res.output and "dropped" in res.output, res.output
    res = CliRunner().invoke(main, ["detect", str(__file__), "--drop-frames", "--no-draw",
                                    "--artifact", str(runtime_artifacts["openvino"])])
    assert res.exit_code == 1 and "--drop-frames is for live sources" in res.output, res.output


def _jpegs(photo_frames, n=4):
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in photo_frames[:n]]


def test_mjpeg_stream_reconnects_and_reports_it(photo_frames) -> None:
    # the server cuts every connection after 5 frames: two reconnects give 12 frames
    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=5, max_connections=4) as url:
        source = Source.parse(url)
        assert source.kind == "stream" and source.live
        stats, events = SourceStats(), []
        frames = list(iter_frames(source, max_frames=12, reconnect=Reconnect(attempts=3, first_wait_s=0.05),
                                  stats=stats, notify=events.append))
    assert len(frames) == 12 and frames[0].shape == (120, 160, 3)
    assert stats.reconnects == 2 and len(events) == 2 and "dropped; reconnecting in 0.1 s" in events[0], events


def test_a_good_frame_resets_the_reconnect_count(monkeypatch) -> None:
    """A camera that drops every 2 frames but always comes back: 5 drops in all with a limit of 2 in a row must not
    end the stream (a day-long stream drops more often than any limit), since each good frame resets the count."""
    import numpy as np

    frames = [np.full((120, 160, 3), v, np.uint8) for v in (10, 200)]
    opened = []

    def reopen(source, reconnect=None):
        opened.append(_FakeCamera(frames, n=2, fps=1000))
        return opened[-1]

    monkeypatch.setattr("hoi_edge.data.sources.open_capture", reopen)
    stats, events = SourceStats(), []
    got = list(iter_frames(Source.parse("rtsp://127.0.0.1:8554/cam"), max_frames=12, stats=stats,
                           reconnect=Reconnect(attempts=2, first_wait_s=0.001), notify=events.append))
    assert len(got) == 12 and len(opened) == 6 and stats.reconnects == 5 > 2
    assert all("(attempt 1/2)" in e for e in events) and len(events) == 5, events


def test_a_stream_that_does_not_come_back_fails_in_one_line(photo_frames) -> None:
    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=3, max_connections=1) as url:
        events = []
        with pytest.raises(InputFileError, match="dropped and did not come back after 2 reconnect attempts"):
            list(iter_frames(Source.parse(url), reconnect=Reconnect(attempts=2, first_wait_s=0.01),
                             notify=events.append))
    assert len(events) == 2


def test_detect_runs_on_an_mjpeg_stream(runtime_artifacts, photo_frames, tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from hoi_edge.cli import main

    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=4, max_connections=3) as url:
        res = CliRunner().invoke(main, ["detect", url, "--artifact", str(runtime_artifacts["openvino"]),
                                        "--max-frames", "6", "--json", str(tmp_path / "d.jsonl"), "--no-draw"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [x["frame"] for x in lines] == list(range(6)) and "reconnected 1 time" in res.output, res.output


def test_unknown_url_schemes_are_refused() -> None:
    with pytest.raises(InputFileError, match="unsupported URL scheme 'ftp'"):
        Source.parse("ftp://camera/stream")


def test_benchmark_throughput_mode_puts_sync_and_pipelined_side_by_side(runtime_artifacts, shared_data,
                                                                        tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from hoi_edge.cli import main

    out = tmp_path / "tp.json"
    res = CliRunner().invoke(main, ["benchmark", "--mode", "throughput", "--data", str(shared_data / "photos"),
                                    "--artifact", str(runtime_artifacts["openvino"]), "--no-reference", "--runs", "4",
                                    "--repeats", "1",
                                    "--warmup", "1", "--threads", "2", "--quiet", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "Frames/s (sync)" in res.output and "Frames/s (pipelined)" in res.output
    entry = json.loads(out.read_text())["backends"][0]
    assert entry["identical"] is True and len(entry["sync_fps"]) == len(entry["pipelined_fps"]) == 1
    assert entry["gain"] == pytest.approx(entry["pipelined_fps"][0] / entry["sync_fps"][0])
    assert entry["execution_pipelined"]["detector"]["executed"] == ["CPU"]


def test_throughput_report_flags_pipelined_detections_that_differ() -> None:
    from hoi_edge.validate.throughput import ThroughputReport, ThroughputResult

    settings = {"images": "x", "num_images": 1, "frames": 2, "repeats": 1, "warmup": 0, "threads": 2, "depth": 2}
    result = ThroughputResult(label="openvino/int8", device="CPU", sync_ms=[10.0], concurrent_ms=[8.0],
                              sync_fps=[90.0], pipelined_fps=[150.0], pipelined_ms=[12.0], identical=False)
    md = ThroughputReport([result], settings).to_markdown()
    assert "| openvino/int8 | CPU | 10.0 | 8.0 | 90.00 | 150.00 | 1.67x | 12.0 | **NO** |" in md


def test_a_url_that_never_opens_fails_at_once_without_backoff() -> None:
    """It used to get the dropped-stream backoff (6 attempts, ~29 s) before failing."""
    from mjpeg_server import free_port

    events = []
    with pytest.raises(InputFileError, match="could not be opened") as err:
        list(iter_frames(Source.parse(f"http://127.0.0.1:{free_port()}/none.mjpg"),
                         reconnect=Reconnect(attempts=6, first_wait_s=0.5), notify=events.append))
    assert events == [] and "check the URL" in str(err.value)


def test_reconnects_count_the_times_the_stream_came_back(photo_frames) -> None:
    """Two connections of 5 frames, then the server refuses: one reconnection, though three reopens were tried
    (the old count said 3)."""
    stats = SourceStats()
    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=5, max_connections=2) as url:
        with pytest.raises(InputFileError, match="did not come back after 2 reconnect attempts"):
            list(iter_frames(Source.parse(url), reconnect=Reconnect(attempts=2, first_wait_s=0.01), stats=stats,
                             notify=lambda event: None))
    assert stats.frames == 10 and stats.reconnects == 1 and stats.attempts == 3


def test_a_stream_recording_is_tagged_with_the_rate_it_came_at(runtime_artifacts, photo_frames, tmp_path) -> None:
    """MJPEG over HTTP states no rate (FFmpeg says 25); a 10 frames/s camera recorded at 25 plays 2.5x too fast."""
    from click.testing import CliRunner

    from hoi_edge.cli import main

    out = tmp_path / "rec.mp4"
    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=20, max_connections=2, fps=10) as url:
        res = CliRunner().invoke(main, ["detect", url, "--artifact", str(runtime_artifacts["openvino"]),
                                        "--max-frames", "12", "--out", str(out), "--sync"])
    assert res.exit_code == 0, res.output
    cap = cv2.VideoCapture(str(out))
    fps, frames = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert frames == 12 and 3.0 <= fps <= 14.0, fps        # about the camera's 10/s (measured, so with jitter)
