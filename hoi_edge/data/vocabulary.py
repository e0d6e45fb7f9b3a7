"""HOI vocabularies as data: verbs, objects and the allowed (verb, object) classes.

The model never hard-codes HICO-DET: everything that depends on the label space
(prompts, object priors, evaluation splits) reads a :class:`Vocabulary`. The
HICO-DET vocabulary ships inside the package (``data/hico_det.json``, generated
by :mod:`hoi_edge.data.hico_facts`); users bring their own with a small JSON file::

    {"name": "kitchen",
     "verbs": ["hold", "cut_with"],
     "objects": ["knife", "cup"],
     "verb_phrases": {"cut_with": "cutting with"},      # optional prompt text
     "hois": [["hold", "knife"], ["cut_with", "knife"], ["hold", "cup"]]}

Object names must be classes the detector knows (COCO names for the default
detector); that is checked when a model is built, not here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hoi_edge.core.errors import VocabularyError
from hoi_edge.core.jsonio import read_json_object
from hoi_edge.core.suggest import did_you_mean

BUILTIN_VOCABULARIES = {"hico": "hico_det.json", "hico-det": "hico_det.json"}
#: The keys a vocabulary file may hold ('pairs' is an old name of 'hois'); any other key is a typo, not ignored.
KNOWN_KEYS = ("name", "verbs", "objects", "hois", "pairs", "verb_phrases", "rare", "splits", "description")


def normalize_name(name: str) -> str:
    """Canonical spelling used to compare class names ('Dining_Table' == 'dining table')."""
    return " ".join(name.replace("_", " ").lower().split())


def canonical_split_name(name: str) -> str:
    """'RF-UC', 'rf-uc', 'rf_uc' and 'RF UC' all name the same zero-shot split ('rf_uc')."""
    return "_".join(name.strip().lower().replace("-", " ").replace("_", " ").split())


@dataclass(frozen=True)
class Vocabulary:
    """A closed HOI label space; class ``i`` is the pair ``hois[i] = (verb index, object index)``."""

    name: str
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    hois: tuple[tuple[int, int], ...]
    verb_phrases: tuple[str, ...] = ()
    rare: tuple[int, ...] = ()
    splits: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    source: str = field(default="", compare=False)     # the file it was read from (named in every error)

    def __post_init__(self) -> None:
        if not self.verb_phrases:
            object.__setattr__(self, "verb_phrases", tuple(v.replace("_", " ") for v in self.verbs))
        _validate(self)

    def describe(self) -> str:
        """"vocabulary 'kitchen' (kitchen.json)": how errors name it, the file included when there is one."""
        where = f" ({self.source})" if self.source and self.source != self.name else ""
        return f"vocabulary '{self.name}'{where}"

    @property
    def num_classes(self) -> int:
        return len(self.hois)

    @property
    def hoi_object(self) -> np.ndarray:
        """Object index of every HOI class, shape (C,): the object prior mask is built from it."""
        return np.array([o for _, o in self.hois], dtype=np.int64)

    @property
    def hoi_verb(self) -> np.ndarray:
        return np.array([v for v, _ in self.hois], dtype=np.int64)

    def hoi_name(self, index: int) -> str:
        verb, obj = self.hois[index]
        return f"{self.verbs[verb]} {self.objects[obj]}"

    def prompt_parts(self) -> list[tuple[str, str]]:
        """(verb phrase, object name) per class, the two text slots of the CLIP4HOI prompt."""
        return [(self.verb_phrases[v], self.objects[o]) for v, o in self.hois]

    def unseen(self, split: str) -> tuple[int, ...]:
        key = canonical_split_name(split)
        if key not in self.splits:
            known = ", ".join(sorted(self.splits)) or "none"
            raise VocabularyError(f"{self.describe()} has no zero-shot split '{split}' (known: {known})"
                                  f"{did_you_mean(key, self.splits)}")
        return self.splits[key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verbs": list(self.verbs),
            "verb_phrases": list(self.verb_phrases),
            "objects": list(self.objects),
            "hois": [list(h) for h in self.hois],
            "rare": list(self.rare),
            "splits": {k: list(v) for k, v in sorted(self.splits.items())},
        }

    def fingerprint(self) -> str:
        """Short hash of the label space: artifacts store it to detect a vocabulary mismatch."""
        core = {"verbs": list(self.verbs), "verb_phrases": list(self.verb_phrases),
                "objects": list(self.objects), "hois": [list(h) for h in self.hois]}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> "Vocabulary":
        """Build from the indexed form written by :meth:`to_dict` or from the named user form."""
        unknown = [k for k in data if k not in KNOWN_KEYS]
        if unknown:
            key = unknown[0]
            raise VocabularyError(f"{source}: unknown key {key!r}{did_you_mean(key, KNOWN_KEYS)} "
                                  f"(a vocabulary holds {', '.join(k for k in KNOWN_KEYS if k != 'pairs')})")
        try:
            verbs = _str_list(data, "verbs", source)
            objects = [normalize_name(o) for o in _str_list(data, "objects", source)]
            raw_hois = data.get("hois", data.get("pairs"))
            if not isinstance(raw_hois, list) or not raw_hois:
                raise VocabularyError(f"{source}: 'hois' must be a non-empty list of [verb, object] pairs")
            hois = tuple(_hoi_index(h, i, verbs, objects, source) for i, h in enumerate(raw_hois))
            phrases = data.get("verb_phrases") or {}
            if isinstance(phrases, Mapping):
                unknown = set(phrases) - set(verbs)
                if unknown:
                    raise VocabularyError(f"{source}: verb_phrases names unknown verbs {sorted(unknown)}")
                phrases = [phrases.get(v, v.replace("_", " ")) for v in verbs]
            elif not (isinstance(phrases, list) and len(phrases) == len(verbs)):
                raise VocabularyError(f"{source}: 'verb_phrases' must map verbs to text or list one phrase per verb")
            splits = {canonical_split_name(k): tuple(int(i) for i in v) for k, v in (data.get("splits") or {}).items()}
            return cls(
                name=str(data.get("name", Path(source).stem)),
                verbs=tuple(verbs),
                objects=tuple(objects),
                hois=hois,
                verb_phrases=tuple(str(p) for p in phrases),
                rare=tuple(int(i) for i in data.get("rare", ())),
                splits=splits,
                source=source,
            )
        except VocabularyError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            raise VocabularyError(f"{source}: malformed vocabulary ({exc})") from exc


def load_vocabulary(spec: str | Path = "hico") -> Vocabulary:
    """Load a builtin vocabulary by name ('hico') or a user JSON file by path."""
    key = str(spec).lower()
    if key in BUILTIN_VOCABULARIES:
        text = resources.files("hoi_edge.data").joinpath(BUILTIN_VOCABULARIES[key]).read_text()
        return Vocabulary.from_dict(json.loads(text), source=f"builtin:{key}")
    path = Path(spec)
    if not path.exists():
        raise VocabularyError(
            f"vocabulary file not found: {path} (use a JSON file or one of {sorted(BUILTIN_VOCABULARIES)})"
        )
    return Vocabulary.from_dict(read_json_object(path, "vocabulary file", VocabularyError), source=str(path))


def _str_list(data: Mapping[str, Any], key: str, source: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise VocabularyError(f"{source}: '{key}' must be a non-empty list of names")
    return [v.strip() for v in value]


def _hoi_index(entry: Any, i: int, verbs: Sequence[str], objects: Sequence[str], source: str) -> tuple[int, int]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        raise VocabularyError(f"{source}: hois[{i}] must be a [verb, object] pair, got {entry!r}")
    verb, obj = entry
    return (_lookup(verb, verbs, "verb", i, source, str), _lookup(obj, objects, "object", i, source, normalize_name))


def _lookup(value: Any, names: Sequence[str], kind: str, i: int, source: str, norm) -> int:
    if isinstance(value, bool):
        raise VocabularyError(f"{source}: hois[{i}] has a boolean {kind}")
    if isinstance(value, int):
        if not 0 <= value < len(names):
            raise VocabularyError(f"{source}: hois[{i}] {kind} index {value} out of range 0..{len(names) - 1}")
        return value
    if isinstance(value, str) and norm(value) in names:
        return list(names).index(norm(value))
    hint = did_you_mean(str(value), names) if isinstance(value, str) else ""
    raise VocabularyError(f"{source}: hois[{i}] names unknown {kind} {value!r} (not in '{kind}s'){hint}")


def _validate(vocab: Vocabulary) -> None:
    src = vocab.describe()
    for kind, names in (("verbs", vocab.verbs), ("objects", vocab.objects)):
        dup = {n for n in names if list(names).count(n) > 1}
        if dup:
            raise VocabularyError(f"{src}: duplicate {kind} {sorted(dup)}")
    if len(vocab.verb_phrases) != len(vocab.verbs):
        raise VocabularyError(f"{src}: {len(vocab.verb_phrases)} verb phrases for {len(vocab.verbs)} verbs")
    first: dict[tuple[int, int], int] = {}
    for i, pair in enumerate(vocab.hois):
        if pair in first:
            raise VocabularyError(f"{src}: the class {vocab.hoi_name(i)!r} is listed twice (hois[{first[pair]}] "
                                  f"and hois[{i}])")
        first[pair] = i
    n = len(vocab.hois)
    for label, idx in [("rare", vocab.rare)] + [(f"split {k}", v) for k, v in vocab.splits.items()]:
        bad = [i for i in idx if not 0 <= i < n]
        if bad:
            raise VocabularyError(f"{src}: {label} lists class indices outside 0..{n - 1}: {bad[:5]}")


def vocabulary_from_text(text: str, known_objects: Sequence[str] = (), name: str = "live",
                         source: str = "vocabulary text") -> Vocabulary:
    """A vocabulary typed by a person: 'verb object' pairs, one per line or separated by commas
    ('hold knife, cut with knife'), or the JSON of a vocabulary file.

    The object is the longest run of last words that names one of ``known_objects`` (the detector's classes,
    so 'hold cell phone' is hold + 'cell phone'), else the last word; the words before it are the verb
    ('cut with' -> verb 'cut_with', prompted as 'cut with'). Whether the objects exist is not checked here:
    that is the detector's check (:meth:`hoi_edge.pipeline.postprocess.LabelMap.build`), the one ``bake`` makes.
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VocabularyError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise VocabularyError(f"{source}: a JSON vocabulary must be an object")
        return Vocabulary.from_dict(data, source=source)
    known = {normalize_name(o) for o in known_objects}
    verbs: dict[str, str] = {}          # verb name -> prompt phrase
    objects: dict[str, None] = {}
    hois: list[list[str]] = []
    for entry in (e for line in text.splitlines() for e in line.split(",")):
        words = entry.split()
        if not words:
            continue
        if len(words) < 2:
            raise VocabularyError(f"{source}: {entry.strip()!r} is not a 'verb object' pair (e.g. 'hold cup')")
        split = next((i for i in range(1, len(words)) if normalize_name(" ".join(words[i:])) in known),
                     len(words) - 1)
        verb, obj = "_".join(words[:split]).lower(), normalize_name(" ".join(words[split:]))
        verbs.setdefault(verb, " ".join(words[:split]).lower())
        objects.setdefault(obj)
        hois.append([verb, obj])
    if not hois:
        raise VocabularyError(f"{source}: no 'verb object' pair given (e.g. 'hold cup')")
    return Vocabulary.from_dict({"name": name, "verbs": list(verbs), "objects": list(objects), "hois": hois,
                                 "verb_phrases": verbs}, source=source)


def vocabulary_lines(vocab: Vocabulary) -> list[str]:
    """'verb object' per class, as :func:`vocabulary_from_text` reads them back (verb phrases as typed)."""
    return [f"{vocab.verb_phrases[v]} {vocab.objects[o]}" for v, o in vocab.hois]
