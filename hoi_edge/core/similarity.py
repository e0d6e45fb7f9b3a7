"""Cosine similarity of network outputs: how close a compressed network stays to its FP32 original.

One definition for the export checks (NNCF's accuracy-aware metric), the distillation benchmark and
the tests: arrays are flattened and compared in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-12     # an all-zero output gives 0, not NaN


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays of the same size, flattened (1.0 = same direction)."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y) + EPS))


def mean_cosine(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> float:
    """Mean over a network's outputs of :func:`cosine` to the reference outputs."""
    return float(np.mean([cosine(o, r) for o, r in zip(outputs, reference, strict=True)]))
