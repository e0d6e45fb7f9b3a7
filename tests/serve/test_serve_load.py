"""A bounded load test: 4 simulated MJPEG cameras (127.0.0.1) on one server, N frames each, on this machine's
cores. Every frame a camera sent is read, and every frame read is processed or counted as dropped; the
process' resident memory after a warm-up round grows by less than RSS_GROWTH_MB over a second round; /metrics
reports each stream's fps and drops; the p95 latency is printed (``-s``) and kept as a test property."""

from __future__ import annotations

from starlette.testclient import TestClient

from hoi_edge.testing import run_simulated_cameras
from hoi_edge.validate.memory import current_rss_mb

CAMERAS, FRAMES, FPS = 4, 30, 15.0
RSS_GROWTH_MB = 64           # the bound: a second round of 4 x 30 frames may add at most this much


def test_four_cameras_every_frame_accounted_for_and_memory_bounded(make_app, photo_jpegs, record_property) -> None:
    app = make_app()
    streams = app.state.streams
    rounds = []
    rss = []
    for last in (False, True):     # round 1 warms up (threads, buffers, allocator); round 2 is measured
        snapshots, sent, seconds = run_simulated_cameras(streams, photo_jpegs, CAMERAS, FRAMES, FPS, timeout=90,
                                                         remove=not last)
        rounds.append((snapshots, sent, seconds))
        rss.append(current_rss_mb())
    for snapshots, sent, _ in rounds:
        assert sent == [FRAMES] * CAMERAS
        for s in snapshots:
            assert s["state"] == "ended", s
            assert s["frames_read"] == FRAMES, s                                  # nothing lost on the way in
            assert s["frames_processed"] + s["dropped"] == FRAMES, s             # nothing unaccounted for
            assert s["frames_processed"] >= 1 and s["latency_ms"]["p95"] is not None
    growth = rss[1] - rss[0]
    assert growth < RSS_GROWTH_MB, f"RSS grew by {growth:.0f} MiB over the second round ({rss})"

    snapshots, _, seconds = rounds[1]
    p95 = max(s["latency_ms"]["p95"] for s in snapshots)
    record_property("p95_latency_ms", p95)
    record_property("rss_growth_mb", round(growth, 1))
    print(f"\n{CAMERAS} cameras x {FRAMES} frames at {FPS:g} fps in {seconds:.1f} s; p95 latency {p95:.0f} ms; "
          f"RSS {rss[0]:.0f} -> {rss[1]:.0f} MiB")
    for s in snapshots:
        print(f"  {s['id']}: {s['frames_processed']} processed, {s['dropped']} dropped, "
              f"p95 {s['latency_ms']['p95']} ms")

    with TestClient(app, base_url="http://127.0.0.1") as c:          # the last round's streams are still listed
        metrics = c.get("/metrics").text
    for s in snapshots:
        sid, dropped, done = s["id"], float(s["dropped"]), float(s["frames_processed"])
        assert f'hoi_edge_stream_frames_dropped_total{{stream="{sid}"}} {dropped}' in metrics
        assert f'hoi_edge_stream_frames_processed_total{{stream="{sid}"}} {done}' in metrics
        assert f'hoi_edge_stream_fps{{stream="{sid}"}}' in metrics
