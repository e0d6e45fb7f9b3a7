"""Zero-shot splits of HICO-DET (RF-UC, NF-UC, UO, UV) read from ``splits.json``.

A split is only the list of unseen HOI classes: as in GEN-VLKT/HOICLIP, Unseen mAP is the
mean over those classes, Seen mAP the mean over all the others, Full the mean over all.
File layout: ``{"splits": {"rf_uc": {"unseen": [...], "name": ...}, ...}}`` with 0-based
class indices (a top-level ``index_base`` other than 0 is rejected).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hoi_edge.core.errors import InputFileError
from hoi_edge.core.jsonio import read_json_object
from hoi_edge.core.suggest import did_you_mean
from hoi_edge.data.vocabulary import Vocabulary, canonical_split_name

#: The four standard splits, in canonical spelling.
SPLIT_NAMES = ("rf_uc", "nf_uc", "uo", "uv")


@dataclass(frozen=True)
class ZeroShotSplit:
    """Unseen class indices of one zero-shot split; the seen set is the complement."""

    name: str
    unseen: tuple[int, ...]
    title: str = ""

    def seen(self, num_classes: int) -> tuple[int, ...]:
        """All classes of a ``num_classes`` vocabulary that are not unseen."""
        unseen = set(self.unseen)
        return tuple(c for c in range(num_classes) if c not in unseen)


normalise_split_name = canonical_split_name


def load_splits(path: str | Path) -> dict[str, ZeroShotSplit]:
    """All splits in the file, keyed by canonical name; :class:`InputFileError` if unreadable."""
    p = Path(path)
    data = read_json_object(p, "splits file")
    if not isinstance(data.get("splits"), dict):
        raise InputFileError(f"splits file {p}: expected an object with a 'splits' object")
    if data.get("index_base", 0) != 0:
        raise InputFileError(f"splits file {p}: only 0-based indices are supported (index_base 0)")
    out: dict[str, ZeroShotSplit] = {}
    for key, entry in data["splits"].items():
        unseen = entry.get("unseen") if isinstance(entry, dict) else None
        if not isinstance(unseen, list) or not all(type(i) is int and i >= 0 for i in unseen):
            raise InputFileError(f"splits file {p}: split '{key}' needs an 'unseen' list of class indices")
        if len(set(unseen)) != len(unseen):
            raise InputFileError(f"splits file {p}: split '{key}' lists a class twice")
        name = normalise_split_name(key)
        title = entry.get("name", "") if isinstance(entry.get("name", ""), str) else ""
        out[name] = ZeroShotSplit(name=name, unseen=tuple(unseen), title=title)
    return out


def load_split(path: str | Path, name: str) -> ZeroShotSplit:
    """One split by name (any spelling accepted by :func:`normalise_split_name`)."""
    splits = load_splits(path)
    key = normalise_split_name(name)
    if key not in splits:
        raise InputFileError(f"splits file {path}: no split '{name}' (available: {', '.join(splits)})"
                             f"{did_you_mean(key, splits)}")
    return splits[key]


def resolve_split(name: str, vocab: Vocabulary, splits_file: str | Path | None = None,
                  data: str | Path | None = None) -> ZeroShotSplit:
    """The one rule for ``--split`` in every command: ``--splits FILE``, else ``splits.json`` beside the data
    (annotations), else the vocabulary's own splits (the built-in HICO-DET vocabulary carries all four)."""
    if splits_file is not None:
        return load_split(splits_file, name)
    if data is not None:
        beside = Path(data).parent / "splits.json"
        if beside.is_file():
            return load_split(beside, name)
    return ZeroShotSplit(name=normalise_split_name(name), unseen=tuple(vocab.unseen(name)))
