"""Where hoi-edge keeps downloaded weights and cached default models (no project imports: every layer may use it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$HOI_EDGE_HOME``, default ``~/.cache/hoi-edge``."""
    return Path(os.environ.get("HOI_EDGE_HOME", Path.home() / ".cache" / "hoi-edge"))
