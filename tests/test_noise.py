"""Third-party console noise is hidden unless --verbose (hoi_edge.core.noise), and only the noise."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r'''
import logging, os, sys, warnings
from hoi_edge.core.noise import configure, quiet_native_stderr
configure(sys.argv[1] == "verbose")
log = logging.getLogger("nncf")
log.addHandler(logging.StreamHandler(sys.stdout))
log.setLevel(logging.INFO)
log.info("NNCF-INFO-BLOCK")
log.warning("NNCF-WARNING")
warnings.warn("`torch.jit.trace` is deprecated. Please switch to `torch.compile`", FutureWarning)
with quiet_native_stderr():
    os.write(2, b"I executorch:cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\nNATIVE-REAL-ERROR\n")
import onnxruntime
'''


def _run(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)


def test_noise_is_hidden_by_default_and_shown_with_verbose():
    quiet = _run("quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "NNCF-WARNING" in quiet.stdout and "NNCF-INFO-BLOCK" not in quiet.stdout
    assert "torch.jit.trace" not in quiet.stderr and "Reading file" not in quiet.stderr
    assert "NATIVE-REAL-ERROR" in quiet.stderr                  # real native errors still reach the user
    loud = _run("verbose")
    assert "NNCF-INFO-BLOCK" in loud.stdout and "torch.jit.trace" in loud.stderr and "Reading file" in loud.stderr


SOURCES = r'''
import logging, sys, warnings
from hoi_edge.core.noise import configure
configure(sys.argv[1] == "verbose")
# NNCF's progress bars (rich): they went to stdout, named after the algorithm only
from nncf.common.logging.track_progress import track
for _ in track(range(3), description="Statistics collection"):
    pass
# PyTorch on a machine with a CUDA toolkit and no GPU, on every export
logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found, using CUDA_HOME='/usr/local'")
# hoi-edge's own tracer warnings: a shape-dependent branch traced on purpose at one size
import torch
from hoi_edge.model.detector import _batched
torch.jit.trace(lambda x: _batched(x, x.shape[0]), torch.zeros(1, 4, 2))
# OpenCV and FFmpeg: a camera that does not exist, a stream that refuses the connection
import cv2
cv2.VideoCapture(97)
cv2.VideoCapture("http://127.0.0.1:9/none.mjpg", cv2.CAP_FFMPEG)
print("DONE")
'''


def test_the_noise_a_newcomer_saw_is_hidden_by_default():
    quiet = subprocess.run([sys.executable, "-c", SOURCES, "quiet"], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "DONE\n", quiet.stdout                      # nothing but the program's own output
    for noise in ("Statistics collection", "No CUDA runtime", "TracerWarning", "VIDEOIO", "Connection refused",
                  "can't open camera"):
        assert noise not in quiet.stderr, quiet.stderr
    loud = subprocess.run([sys.executable, "-c", SOURCES, "verbose"], capture_output=True, text=True, timeout=300)
    assert loud.stdout == "DONE\n", loud.stdout                        # --verbose: shown, on stderr only
    for shown in ("Statistics collection", "No CUDA runtime", "TracerWarning"):
        assert shown in loud.stderr, (shown, loud.stderr)


def test_one_random_weights_warning_per_command(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    """The offline default model said it twice (once when resolved, once when loaded), export a third time."""
    import shutil

    from hoi_edge import HOIDetector
    from hoi_edge.core import provenance
    from hoi_edge.weights import defaults

    monkeypatch.setenv("HOI_EDGE_HOME", str(tmp_path))
    shutil.copy(tiny_checkpoint, tmp_path / defaults.NANODET_NAME)       # the offline default, already cached
    monkeypatch.setattr(provenance, "_warned", False)
    monkeypatch.delenv(provenance.WARNED_ENV, raising=False)
    path = defaults.offline_checkpoint()
    HOIDetector.from_checkpoint(path)
    HOIDetector.from_checkpoint(path)
    err = capsys.readouterr().err
    assert err.count("WARNING") == 1 and "offline default model" in err, err
