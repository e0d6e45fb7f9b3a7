"""Helpers of the serving tests: the tiny model's server config, a real uvicorn on 127.0.0.1 in a thread, and
a polling wait with a timeout."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from hoi_edge.data.sources import Reconnect
from hoi_edge.serve.config import ServeConfig

QUICK_RECONNECT = Reconnect(attempts=1, first_wait_s=0.1, max_wait_s=0.1, timeout_ms=3000)


def tiny_config(checkpoint, **kw) -> ServeConfig:
    return ServeConfig(model=str(checkpoint), reconnect=QUICK_RECONNECT, **kw)


@contextlib.contextmanager
def live_server(app, timeout: float = 20.0) -> Iterator[str]:
    """``with live_server(app) as base_url``: a real uvicorn on 127.0.0.1 (a free port) in a thread."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1,
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not shut down"


def wait_until(check, timeout: float = 30.0, every: float = 0.05, what: str = "condition"):
    """``check()``'s first truthy value, polled; fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)
