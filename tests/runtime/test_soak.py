"""A bounded soak of the live path: a local MJPEG server (127.0.0.1 only) sends a few thousand small frames and
drops the connection every few hundred; ``detect``'s library call (reconnects, drop-frames reader, pipelined
inference, drawing, recording, JSON lines) runs on the tiny OpenVINO artifact in a fresh process whose resident
memory is sampled as it goes.

Checked: every frame read is processed or counted as dropped, every drop of the connection is followed by a
reconnection, and the RSS after warm-up (the first connection) stays within ``RSS_BOUND_MIB``. The bound is
stated in docs/devices.md. A leak of one 320x240 frame (225 KiB) per frame read would grow the RSS by ~600 MiB
over the run, per frame processed (a few hundred) by 50-100 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from mjpeg_server import MJPEGServer

FRAMES = 3000                 # frames the run reads
PER_CONNECTION = 300          # the server drops the connection after this many
SERVER_FPS = 250.0            # the camera's rate: faster than the pipeline on a loaded machine, so frames drop
WARMUP_FRAMES = PER_CONNECTION
RSS_BOUND_MIB = 24.0          # growth of the RSS after warm-up allowed over the run
SIZE = (320, 240)

CHILD = r"""
import json, sys, time
from pathlib import Path
from hoi_edge import HOIDetector
from hoi_edge.core.noise import configure
from hoi_edge.data.sources import Reconnect
from hoi_edge.pipeline.detect import DetectOptions, run_detect

def rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")

artifact, url, out, frames, warmup = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
configure(False)
detector = HOIDetector.from_artifact(artifact, throughput=True)
opts = DetectOptions(out=str(out / "live.mp4"), json_out=str(out / "live.jsonl"), max_frames=frames, drop_frames=True,
                     reconnect=Reconnect(attempts=4, first_wait_s=0.01, max_wait_s=0.05))
start, warm, samples, results = time.perf_counter(), None, [], 0
for result in run_detect(detector, url, opts):
    results += 1
    if warm is None and opts.source_stats.frames >= warmup:
        warm = rss_mib()
    if warm is not None and results % 25 == 0:
        samples.append(rss_mib())
samples.append(rss_mib())
print(json.dumps({"results": results, "frames_read": opts.stream_stats.frames_read,
                  "frames_done": opts.stream_stats.frames_done, "dropped": opts.stream_stats.dropped,
                  "source_frames": opts.source_stats.frames, "reconnects": opts.source_stats.reconnects,
                  "warm_rss_mib": warm, "rss_mib": samples, "seconds": time.perf_counter() - start}))
"""


def _jpegs(photo_frames) -> list[bytes]:
    frames = [cv2.resize(f, SIZE) for f in photo_frames[:8]]
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in frames]


def test_soak_every_frame_is_accounted_for_and_memory_stays_flat(runtime_artifacts, photo_frames, tmp_path):
    connections = -(-FRAMES // PER_CONNECTION)
    with MJPEGServer(_jpegs(photo_frames), frames_per_connection=PER_CONNECTION, max_connections=connections + 1,
                     fps=SERVER_FPS) as url:
        run = subprocess.run([sys.executable, "-c", CHILD, str(runtime_artifacts["openvino"]), url, str(tmp_path),
                              str(FRAMES), str(WARMUP_FRAMES)], capture_output=True, text=True, timeout=300,
                             cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stdout + run.stderr
    stats = json.loads(run.stdout.strip().splitlines()[-1])
    # every frame read is either processed (one result, one JSON line) or counted as dropped
    assert stats["source_frames"] == stats["frames_read"] == FRAMES, stats
    assert stats["frames_done"] + stats["dropped"] == FRAMES and stats["results"] == stats["frames_done"], stats
    assert len((tmp_path / "live.jsonl").read_text().splitlines()) == stats["frames_done"]
    assert stats["reconnects"] == connections - 1, stats
    cap = cv2.VideoCapture(str(tmp_path / "live.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == stats["frames_done"]
    cap.release()
    growth = max(stats["rss_mib"]) - stats["warm_rss_mib"]
    print(f"soak: {FRAMES} frames, {stats['dropped']} dropped, {stats['reconnects']} reconnects in "
          f"{stats['seconds']:.1f} s; RSS {stats['warm_rss_mib']:.0f} MiB after warm-up, growth {growth:.1f} MiB "
          f"(bound {RSS_BOUND_MIB:.0f}); samples {np.round(stats['rss_mib'][::10], 1).tolist()}")
    assert growth <= RSS_BOUND_MIB, stats
