"""The format stamp every file hoi-edge writes carries (``format``, ``format_version``), checked on read: a file
of another kind, or from a newer hoi-edge, is one clear error naming the file instead of a later crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hoi_edge.core.errors import HOIEdgeError


def check_format(data: Mapping[str, Any], path: str | Path, fmt: str, newest: int, what: str,
                 error: type[HOIEdgeError]) -> int:
    """The file's format version after checking ``data`` is a ``fmt`` file (a ``what``) of a version this hoi-edge
    reads (an integer <= ``newest``; files from before versions existed count as 0)."""
    if data.get("format") != fmt:
        raise error(f"{path} is not a hoi-edge {what} (format {data.get('format')!r}, expected '{fmt}')")
    version = data.get("format_version", 0)
    if type(version) is not int:
        raise error(f"{what} {path}: format_version must be an integer, got {version!r}")
    if version > newest:
        raise error(f"{what} {path} has format version {version}, newer than this hoi-edge reads ({newest}); "
                    "upgrade hoi-edge")
    return version
