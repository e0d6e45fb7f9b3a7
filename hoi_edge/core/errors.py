"""Exceptions that the CLI turns into one clear line instead of a traceback.

Every error a user can cause (bad file, wrong size, unknown target, vocabulary
mismatch) derives from :class:`HOIEdgeError`, so callers can catch one type.
"""

from __future__ import annotations


class HOIEdgeError(Exception):
    """Base class for user-facing errors; the message must name the file or value at fault."""


class InputFileError(HOIEdgeError):
    """A file the user gave is missing, unreadable or malformed."""


class VocabularyError(HOIEdgeError):
    """A vocabulary file is malformed or does not match the model/artifact."""


class WeightsError(HOIEdgeError):
    """Weights are missing, corrupt or do not fit the model's architecture."""


class ArtifactError(HOIEdgeError):
    """An exported artifact is missing parts, has a bad manifest or the wrong input size."""


class ExportError(HOIEdgeError):
    """Export was asked for something impossible (unknown target, bad option)."""


class DeviceError(HOIEdgeError):
    """A device or execution provider that is malformed, unknown, or not present on this machine."""
