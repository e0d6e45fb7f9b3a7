"""The checks every request passes before it reaches a route: the API key, the Host header, the body size.

- **API key** (when the server has one): ``Authorization: Bearer KEY``, ``X-API-Key: KEY``, or the
  ``hoi_edge_key`` cookie the page sets after asking for it (an ``<img>`` or ``EventSource`` cannot send
  headers); compared in constant time. Only the page itself (``/``, ``/static/...``: no data, no secrets)
  is served without it, so it can ask. Otherwise 401.
- **Host** (a server on the loopback): the Host header must name the loopback (127.0.0.1, localhost, ::1),
  so a web page elsewhere cannot reach it through DNS rebinding. Otherwise 400.
- **Body size**: a declared Content-Length over the limit is refused at once, and a body sent without
  one is counted as it arrives; either way 413 before the route sees it.

A pure ASGI middleware: it wraps ``receive`` instead of buffering the body.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from hoi_edge.serve.config import is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KEY_COOKIE = "hoi_edge_key"
KEY_HEADER = "x-api-key"
OPEN_PATHS = ("/", "/favicon.ico")
OPEN_PREFIXES = ("/static/",)


class _TooLarge(Exception):
    pass


async def _reply(send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """``Guard(app, api_key=..., max_body=..., loopback_only=...)``."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body: int, loopback_only: bool) -> None:
        self.app, self.max_body, self.loopback_only = app, max_body, loopback_only
        self._key = api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.loopback_only and not _loopback_host(headers.get("host", "")):
            await _reply(send, 400, f"Host {headers.get('host', '')!r} is not this machine's loopback; this server "
                                    "only answers requests for 127.0.0.1 / localhost")
            return
        path = scope.get("path", "")
        if self._key is not None and not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
            if not self._authorized(headers):
                await _reply(send, 401, "missing or wrong API key: send 'Authorization: Bearer KEY' or "
                                        "'X-API-Key: KEY'", [(b"www-authenticate", b'Bearer realm="hoi-edge"')])
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _reply(send, 413, f"request body of {int(declared)} bytes is over this server's limit of "
                                    f"{self.max_body} bytes (--max-upload-mb)")
            return
        await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, started = 0, False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _reply(send, 413, f"request body is over this server's limit of {self.max_body} bytes "
                                    "(--max-upload-mb)")

    def _authorized(self, headers: dict[str, str]) -> bool:
        candidates = []
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            candidates.append(auth[7:].strip())
        if KEY_HEADER in headers:
            candidates.append(headers[KEY_HEADER].strip())
        if "cookie" in headers:
            try:
                morsel = SimpleCookie(headers["cookie"]).get(KEY_COOKIE)
            except CookieError:
                morsel = None
            if morsel is not None:
                candidates.append(morsel.value)
        return any(hmac.compare_digest(c.encode(), self._key) for c in candidates)


def _loopback_host(host: str) -> bool:
    """Whether a Host header ('127.0.0.1:8000', 'localhost', '[::1]:8000') names the loopback."""
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host
    else:
        name = host.split(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(name)
