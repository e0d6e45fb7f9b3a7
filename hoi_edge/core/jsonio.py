"""Reading user-supplied JSON files with errors that name the file and what is wrong with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hoi_edge.core.errors import HOIEdgeError, InputFileError


def read_json_object(path: str | Path, what: str, error: type[HOIEdgeError] = InputFileError) -> dict[str, Any]:
    """Parse ``path`` (a ``what``, e.g. 'splits file') that must hold a JSON object."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {what} {p}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{what} {p} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise error(f"{what} {p} nests too deeply to be read") from None
    except ValueError as exc:              # e.g. an integer of thousands of digits (Python's limit)
        raise error(f"{what} {p} holds a value that cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {p}: expected a JSON object at the top level, got {type(data).__name__}")
    return data
