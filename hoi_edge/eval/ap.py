"""11-point interpolated average precision, exactly as the official HICO-DET code computes it.

The official MATLAB code (``VOCevaldet_bboxpair.m``), GEN-VLKT/HOICLIP's ``voc_ap`` and
UPT's ``'11P'`` meter all use VOC2007-style 11-point AP, not all-point AP: for each recall
threshold ``t`` in {0, 0.1, ..., 1.0} take the largest precision among ranks whose recall
is ``>= t`` (0 if there is none), and average the 11 values.

Thresholds are the doubles MATLAB's ``0:0.1:1`` produces (its colon operator builds the
first half as ``k*0.1`` and the second half as ``1 - (10-k)*0.1``). They equal ``k/10``
except ``t = 0.3``, which is ``3*0.1 = 0.30000000000000004``: a recall of exactly 0.3
(e.g. 3 of 10 GT) does not reach that point in the official code, and not here either.
(NumPy's ``arange(0, 1.1, 0.1)``, used by GEN-VLKT, also nudges 0.6 and 0.7 upwards.)
The 11 points are summed then divided by 11, so a perfect detector gives exactly 1.0
(MATLAB's running ``ap + p/11`` may end at 1.0000000000000002).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike


def _matlab_colon_0_to_1() -> np.ndarray:
    """The 11 doubles of MATLAB's ``0:0.1:1`` (symmetric colon algorithm)."""
    step, n = 0.1, 10
    values = [0.0] * (n + 1)
    for k in range(n // 2 + 1):
        values[k] = 0.0 + k * step
        values[n - k] = 1.0 - k * step
    values[n // 2] = (0.0 + 1.0) / 2
    return np.array(values, dtype=np.float64)


#: Recall thresholds of the 11-point AP, bit-identical to the official MATLAB code.
RECALL_THRESHOLDS = _matlab_colon_0_to_1()


def voc_ap_11point(tp: ArrayLike, fp: ArrayLike, n_gt: int) -> float:
    """AP in [0, 1] of one class from per-detection TP/FP flags in descending-score order.

    ``tp`` and ``fp`` are 0/1 (or bool) arrays of equal length; ``n_gt`` is the number
    of GT instances of the class. Returns NaN when ``n_gt == 0`` so that callers can leave
    the class out of means, as GEN-VLKT/HOICLIP's Python evaluator does (the official
    MATLAB code would give such a class AP 0).
    """
    tp_arr = np.asarray(tp).astype(np.int64, copy=False).ravel()
    fp_arr = np.asarray(fp).astype(np.int64, copy=False).ravel()
    if tp_arr.shape != fp_arr.shape:
        raise ValueError(f"tp and fp must have the same length, got {tp_arr.size} and {fp_arr.size}")
    if n_gt < 0:
        raise ValueError(f"n_gt must be >= 0, got {n_gt}")
    if n_gt == 0:
        return math.nan
    if tp_arr.size == 0:
        return 0.0
    ctp = np.cumsum(tp_arr)
    cfp = np.cumsum(fp_arr)
    if ctp[-1] > n_gt:
        raise ValueError(f"{ctp[-1]} true positives exceed n_gt={n_gt}")
    ranks = ctp + cfp
    prec = np.zeros(ctp.shape, dtype=np.float64)
    np.divide(ctp, ranks, out=prec, where=ranks > 0)
    recall = ctp / float(n_gt)
    # Recall never decreases with rank, so "recall >= t" selects a suffix of the ranking and
    # its largest precision is suffix_max at the suffix's first rank.
    suffix_max = np.maximum.accumulate(prec[::-1])[::-1]
    first = np.searchsorted(recall, RECALL_THRESHOLDS, side="left")
    points = np.where(first < ctp.size, suffix_max[np.minimum(first, ctp.size - 1)], 0.0)
    return float(points.sum() / RECALL_THRESHOLDS.size)
