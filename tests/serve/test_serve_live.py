"""A real uvicorn on 127.0.0.1: ``tritonclient.http`` (an independent KServe v2 client) gets the triplets
``hoi-edge detect`` gives; streams from simulated MJPEG cameras come out as Server-Sent Events, annotated
MJPEG and /metrics; a source that dies is reported and the server goes on; streams come and go at run time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from serve_helpers import live_server, wait_until

from hoi_edge.testing import MJPEGServer, free_port

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_tritonclient_gets_the_triplets_of_hoi_edge_detect(make_app, tiny_checkpoint, photos, tmp_path) -> None:
    import tritonclient.http as tc

    from hoi_edge.cli import main
    from hoi_edge.pipeline.preprocess import load_image

    photo = photos[0]
    out = tmp_path / "detect.jsonl"
    result = CliRunner().invoke(main, ["detect", str(photo), "--model", str(tiny_checkpoint), "--json", str(out),
                                       "--no-draw"])
    assert result.exit_code == 0, result.output
    expected = json.loads(out.read_text().splitlines()[0])["detections"]
    assert len(expected) > 5

    app = make_app(model_name="hoi")
    with live_server(app) as url:
        client = tc.InferenceServerClient(url.removeprefix("http://"), connection_timeout=10, network_timeout=30)
        try:
            assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("hoi")
            meta = client.get_model_metadata("hoi")
            assert meta["inputs"][0]["datatype"] == "UINT8"
            image = load_image(photo)
            tensor = tc.InferInput("image", list(image.shape), "UINT8")
            tensor.set_data_from_numpy(image)                          # binary tensor data, as the client defaults
            res = client.infer("hoi", [tensor])
            as_json = client.infer("hoi", [tensor], outputs=[tc.InferRequestedOutput(n, binary_data=False)
                                                            for n in ("score", "verb", "object_label")])
            encoded = tc.InferInput("image", [1], "BYTES")             # OpenVINO Model Server's encoded-image form
            encoded.set_data_from_numpy(np.array([photo.read_bytes()], dtype=object))
            from_jpeg = client.infer("hoi", [encoded])
            with pytest.raises(tc.InferenceServerException, match="unknown model"):
                client.infer("nope", [tensor])
        finally:
            client.close()
    got = {name: res.as_numpy(name) for name in ("score", "hoi", "verb", "object_label", "human_box", "object_box")}
    assert len(got["score"]) == len(expected)
    assert got["hoi"].tolist() == [d["hoi"] for d in expected]
    assert [v.decode() for v in got["verb"]] == [d["verb"] for d in expected]
    assert [v.decode() for v in got["object_label"]] == [d["object_label"] for d in expected]
    np.testing.assert_array_equal(got["score"], np.float32([d["score"] for d in expected]))
    np.testing.assert_array_equal(got["human_box"], np.float32([d["human_box"] for d in expected]))
    np.testing.assert_array_equal(got["object_box"], np.float32([d["object_box"] for d in expected]))
    np.testing.assert_array_equal(as_json.as_numpy("score"), got["score"])
    np.testing.assert_array_equal(from_jpeg.as_numpy("score"), got["score"])


def _sse_frames(client: httpx.Client, path: str, n: int) -> list[dict]:
    events = []
    with client.stream("GET", path, params={"max_events": n}, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def test_streams_events_mjpeg_metrics_and_a_dying_source(make_app, photo_jpegs) -> None:
    steady = MJPEGServer(photo_jpegs, frames_per_connection=100_000, max_connections=3, fps=15)
    dying = MJPEGServer(photo_jpegs, frames_per_connection=6, max_connections=1, fps=15)   # drops, never returns
    with steady as steady_url, dying as dying_url:
        app = make_app(sources=[steady_url])
        with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
            wait_until(lambda: c.get("/v1/streams/s0").json()["frames_processed"] >= 3, what="s0 frames")
            added = c.post("/v1/streams", json={"source": dying_url})
            assert added.status_code == 201 and added.json()["id"] == "s1"
            frames = _sse_frames(c, "/v1/streams/s0/events", 3)
            assert [f["stream"] for f in frames] == ["s0"] * 3
            assert frames[0]["seq"] < frames[1]["seq"] < frames[2]["seq"]
            assert frames[0]["detections"] and {"verb", "object_label", "score", "human_box"} <= set(
                frames[0]["detections"][0])
            with c.stream("GET", "/v1/streams/s0/mjpeg", params={"max_frames": 2}) as r:
                body = r.read()
            assert body.count(b"Content-Type: image/jpeg") == 2 and body.count(b"\xff\xd8") >= 2
            snap = c.get("/v1/streams/s0/frame.jpg")
            assert snap.status_code == 200 and snap.content[:2] == b"\xff\xd8"

            failed = wait_until(lambda: (s := c.get("/v1/streams/s1").json())["state"] == "failed" and s,
                                timeout=40, what="the dying stream to be reported failed")
            # it dropped once and never returned: one attempt, no reconnection (reconnects count returns)
            assert "did not come back after 1 reconnect attempts" in failed["error"] and failed["reconnects"] == 0
            assert failed["frames_read"] == 6 == failed["frames_processed"] + failed["dropped"]
            ended = [json.loads(line[6:]) for line in c.get("/v1/streams/s1/events").text.splitlines()
                     if line.startswith("data: ")]
            assert ended[-1] == {"stream": "s1"}       # the events of a finished stream end
            assert c.get("/healthz").json()["streams"] == {"s0": "running", "s1": "failed"}
            before = c.get("/v1/streams/s0").json()["frames_processed"]
            wait_until(lambda: c.get("/v1/streams/s0").json()["frames_processed"] > before, what="s0 going on")

            metrics = c.get("/metrics").text
            for line in ('hoi_edge_stream_frames_dropped_total{stream="s0"}', 'hoi_edge_stream_fps{stream="s0"}',
                         'hoi_edge_stream_reconnects_total{stream="s1"} 0.0',
                         'hoi_edge_stream_state{state="failed",stream="s1"} 1.0',
                         'hoi_edge_stream_latency_seconds_bucket{le="10.0",stream="s0"}',
                         'hoi_edge_unit_seconds_count{stream="s0",unit="detector"}'):
                assert line in metrics, line
            assert c.delete("/v1/streams/s1").status_code == 204
            assert c.delete("/v1/streams/s1").status_code == 404
            assert [s["id"] for s in c.get("/v1/streams").json()] == ["s0"]
            assert 'stream="s1"' not in c.get("/metrics").text.split("hoi_edge_stream_latency_seconds")[-1]


def test_the_command_serves_until_interrupted(tiny_checkpoint, tmp_path) -> None:
    """``hoi-edge serve`` itself, in a process of its own: it refuses an exposed host without a key before
    loading anything, serves with a key from a file, and stops cleanly on Ctrl-C (SIGINT)."""
    from hoi_edge.cli import main

    refused = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--model", "does-not-matter.pt"])
    assert refused.exit_code == 1 and "--api-key" in refused.output and refused.exception is not None
    assert "checkpoint not found" not in refused.output              # refused before any model was looked at
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    exe = [sys.executable, "-m", "hoi_edge.cli", "serve"]
    key = "s3cret-" + "x" * 20
    (tmp_path / "key").write_text(key + "\n")
    port = free_port()
    proc = subprocess.Popen(exe + ["--model", str(tiny_checkpoint), "--port", str(port), "--api-key-file",
                                   str(tmp_path / "key")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(url + "/healthz", timeout=2).status_code
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read()
                return None

        assert wait_until(up, timeout=90, every=0.3, what="hoi-edge serve to answer") == 401
        assert httpx.get(url + "/healthz", headers={"x-api-key": key}, timeout=5).json()["status"] == "ok"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        out = proc.stdout.read()
        assert f"http://127.0.0.1:{port}/" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
