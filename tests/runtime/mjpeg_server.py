"""A small MJPEG-over-HTTP server on 127.0.0.1 for the network-camera tests: serves JPEG frames as
``multipart/x-mixed-replace`` (what IP cameras send), a bounded number per connection, and can cut a
connection short to imitate a stream that drops."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Sequence

BOUNDARY = "hoiedgeframe"


class MJPEGServer:
    """``with MJPEGServer(jpegs, frames_per_connection=5) as url: ...``; it stops itself after
    ``max_connections`` connections or when the ``with`` block ends."""

    def __init__(self, jpegs: Sequence[bytes], frames_per_connection: int = 10, max_connections: int = 5,
                 fps: float = 50.0) -> None:
        self.jpegs, self.frames_per_connection, self.fps = list(jpegs), frames_per_connection, fps
        self.max_connections = max_connections
        self.connections = 0
        self.frames_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:   # quiet
                pass

            def do_GET(self) -> None:
                server.connections += 1
                if server.connections > server.max_connections:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.end_headers()
                try:
                    for i in range(server.frames_per_connection):
                        jpg = server.jpegs[(server.frames_sent) % len(server.jpegs)]
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                        self.wfile.flush()
                        server.frames_sent += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True       # the stream "drops" after frames_per_connection frames

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/stream.mjpg"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
