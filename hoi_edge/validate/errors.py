"""The validator's own user-facing error (the CLI turns it into one line, like every HOIEdgeError)."""

from __future__ import annotations

from hoi_edge.core.errors import HOIEdgeError


class ValidationError(HOIEdgeError):
    """A validation or benchmark run cannot go on: nothing to compare, mismatched label spaces,
    or a backend process that crashed (its traceback is printed above the message)."""
