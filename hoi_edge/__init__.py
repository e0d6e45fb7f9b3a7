"""hoi-edge: zero-shot HOI detection (CLIP4HOI) from training to edge devices.

``from hoi_edge import HOIDetector`` is the public entry point (:mod:`hoi_edge.loader`); it is imported
on first use, so ``import hoi_edge`` (and ``hoi-edge --help``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["HOIDetector", "__version__"]

if TYPE_CHECKING:
    from hoi_edge.loader import HOIDetector


def __getattr__(name: str) -> Any:
    if name == "HOIDetector":
        from hoi_edge.loader import HOIDetector

        return HOIDetector
    raise AttributeError(f"module 'hoi_edge' has no attribute {name!r}")
