"""SIGKILL at a chosen moment, for the crash-safety tests: a child process runs a script that stops at a kill
point (the n-th call of a function, just before or just after it runs) and says so by writing a marker file;
the parent polls for the marker, which proves the child is exactly there, and kills it with SIGKILL: no
cleanup code runs, as in a crash, an OOM kill or a power cut. No sleeps stand in for synchronisation.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def kill_point(targets: list[tuple[Any, str]], nth: int, when: str, marker: str | Path) -> None:
    """In the child: make the ``nth`` call (counted over every ``(owner, name)`` function in ``targets``, from
    now on) stop forever ``when`` ('before' or 'after' it runs), after writing ``marker``."""
    calls = {"n": 0}

    def stop(name: str) -> None:
        Path(marker).write_text(f"{name} call {nth}, {when}")
        threading.Event().wait()                     # until SIGKILL

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            here = calls["n"] == nth
            if here and when == "before":
                stop(name)
            result = real(*args, **kwargs)
            if here and when == "after":
                stop(name)
            return result

        return wrapper

    for owner, name in targets:
        setattr(owner, name, wrap(name, getattr(owner, name)))


@dataclass
class Killed:
    killed: bool            # False: the child ended on its own (it never reached the kill point); True: signalled
    returncode: int
    output: str


def run_and_kill(script: str, ready: Callable[[], bool], timeout: float = 180.0, cwd: Path | None = None,
                 sig: int = signal.SIGKILL) -> Killed:
    """Run ``script`` in a fresh Python (the repo and tests/ importable); send it ``sig`` (SIGKILL; SIGINT is
    Ctrl-C) once ``ready()``, and wait for it to end."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryFile(mode="w+") as log:      # a file, not a pipe: a chatty child never blocks on it
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        killed = False
        try:
            while proc.poll() is None:
                if ready():
                    proc.send_signal(sig)
                    killed = True
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"the child neither reached its kill point nor ended in {timeout:.0f} s")
                time.sleep(0.02)                     # polling interval of the marker, not a synchronisation
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        return Killed(killed=killed, returncode=proc.returncode, output=log.read())
