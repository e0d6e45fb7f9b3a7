""""Did you mean ...?": the one rule for suggesting the nearest valid name after a typo.

Used for every closed set a user types a name from: CLI choices (targets, presets, devices), zero-shot
split names, vocabulary keys and class names. Besides spelling (difflib's ratio), a name that is one
word (or a misspelt word) of a longer valid name counts as close ('ball' -> 'sports ball', 'tabel' ->
'dining table'), the usual mistake with COCO class names, which plain edit distance misses.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _norm(name: str) -> str:
    return " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())


def closest(value: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The valid name ``value`` most likely meant (as spelled in ``choices``), or None."""
    options = [str(c) for c in choices]
    by_norm = {}
    for c in options:
        by_norm.setdefault(_norm(c), c)
    key = _norm(value)
    if not key:
        return None
    if key in by_norm:
        return by_norm[key]
    near = difflib.get_close_matches(key, list(by_norm), n=1, cutoff=cutoff)
    if near:
        return by_norm[near[0]]
    words = set(key.split())
    containing = [n for n in by_norm if words and words <= set(n.split())]
    if containing:
        return by_norm[min(containing, key=len)]
    if len(words) == 1:                  # a misspelt word of a longer name: 'tabel' -> 'dining table'
        scored = [(max(difflib.SequenceMatcher(None, key, w).ratio() for w in n.split()), n) for n in by_norm]
        best = max(scored, default=(0.0, ""))
        if best[0] >= max(cutoff, 0.75):
            return by_norm[best[1]]
    return None


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'sports ball'?"`` or ``""`` when nothing is close: append it to an error message."""
    near = closest(value, choices)
    return f"; did you mean {near!r}?" if near is not None and near != value else ""
