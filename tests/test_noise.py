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
