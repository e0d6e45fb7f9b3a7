"""What ``hoi-edge serve`` is asked to do, and the safety rules checked before any model is loaded.

Safe by default: the server binds to 127.0.0.1; any other address needs an API key (``--api-key`` or
``--api-key-file``), which every request must then carry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hoi_edge.core.errors import InputFileError

if TYPE_CHECKING:             # the CLI imports this module for its defaults: no OpenCV before a command runs
    from hoi_edge.data.sources import Reconnect

MIB = 2**20
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 32         # a 4K RGB frame as a raw UINT8 tensor is 25 MiB
MIN_KEY_LENGTH = 16
KEY_HINT = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))'"


@dataclass
class ServeConfig:
    """``model``/``artifact``: what ``hoi-edge detect`` takes (none: the default model); ``text_model``: the
    checkpoint an artifact was exported from, which lets the page re-bake its vocabulary; ``sources``: what
    ``detect`` reads (camera:N, stream URLs, video files), started with the server."""

    model: str | None = None
    artifact: str | None = None
    text_model: str | None = None
    vocab: str | None = None
    clip_weights: str | None = None
    detector_weights: str | None = None
    device: str | None = None
    sources: list[str] = field(default_factory=list)
    loop: bool = False                     # video files start again at their end (a simulated camera)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * MIB
    max_streams: int = 16
    model_name: str = "hoi-edge"           # the KServe model name (/v2/models/{name})
    top: int = 10                          # triplets drawn and sent per frame
    min_score: float = 0.0
    depth: int | None = None               # frames in flight per stream (None: the stream module's default)
    reconnect: Reconnect | None = None     # how dropped streams are reopened (None: detect's policy)

    def check(self) -> None:
        """Every option error before a model is loaded: exposure without a key, bad sources, bad limits."""
        from hoi_edge.data.sources import Source

        check_exposure(self.host, self.api_key)
        if self.max_upload_bytes < 1024:
            raise InputFileError(f"--max-upload-mb must allow at least 1 KiB, got {self.max_upload_bytes} bytes")
        if self.model_name != self.model_name.strip() or not self.model_name or "/" in self.model_name:
            raise InputFileError(f"--model-name {self.model_name!r}: give a name without '/' or spaces at its ends")
        if len(self.sources) > self.max_streams:
            raise InputFileError(f"{len(self.sources)} sources given, at most {self.max_streams} streams")
        for spec in self.sources:
            if Source.parse(spec).kind == "image":
                raise InputFileError(f"--source {spec}: an image is not a stream (POST it to /v1/detect instead)")
        if self.text_model and not self.artifact:
            raise InputFileError("--text-model is for --artifact (a --model checkpoint has its own text encoder)")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and 'localhost': only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Binding anywhere but the loopback needs a key: the server runs models, opens streams and changes its
    vocabulary on request."""
    if api_key is not None and len(api_key) < MIN_KEY_LENGTH:
        raise InputFileError(f"the API key is {len(api_key)} characters; use at least {MIN_KEY_LENGTH} ({KEY_HINT})")
    if not is_loopback(host) and api_key is None:
        raise InputFileError(f"--host {host} lets other machines connect: give --api-key KEY or --api-key-file FILE "
                             f"(every request must then send it), or keep the default --host {DEFAULT_HOST}; "
                             f"{KEY_HINT}")


def read_key_file(path: str | Path) -> str:
    """The key on the first line of ``path`` (a file, so the key is not on the command line, where ``ps`` shows it)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputFileError(f"--api-key-file {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"--api-key-file {path}: cannot read it ({exc})") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise InputFileError(f"--api-key-file {path}: the first line is empty")
    return key
