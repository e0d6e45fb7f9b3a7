"""Honesty about random weights: which parts of a model were never trained or loaded, and the one
warning every loading path (PyTorch checkpoint or exported artifact) prints about it."""

from __future__ import annotations

import sys
from typing import Any

_warned: set[str] = set()
#: what ``hoi-edge distill`` writes into ``distilled_from`` when the teacher itself had random-init parts
RANDOM_TEACHER = "random-init teacher"


def random_init_parts(cfg: Any) -> list[str]:
    """Parts of a :class:`~hoi_edge.model.config.ModelConfig` whose weights name no source (random init):
    'detector' without detector weights, 'clip' without a CLIP tag or file, 'clip image tower' for a separate
    image tower (``clip.image_tower``) with neither weights nor a teacher it was distilled from; a tower
    distilled from a teacher with random parts inherits them ('clip image tower (distilled from a random-init
    teacher)')."""
    parts = []
    if not getattr(cfg.detector, "weights", None):
        parts.append("detector")
    if not getattr(cfg.clip, "pretrained", None):
        parts.append("clip")
    tower = getattr(cfg.clip, "image_tower", None)
    if tower is not None and (tower.model_name or tower.architecture):
        teacher = tower.distilled_from
        if teacher is None and not tower.pretrained:
            parts.append("clip image tower")
        elif teacher is not None and RANDOM_TEACHER in teacher:
            parts.append("clip image tower (distilled from a random-init teacher)")
    return parts



def random_init_warning(source: str, parts: list[str]) -> str:
    return (f"hoi-edge: WARNING {source} has random-init weights ({', '.join(parts)}); "
            "its HOI scores are not meaningful")


def warn_random_init(source: str, parts: list[str]) -> None:
    """Print :func:`random_init_warning` to stderr, once per source and process."""
    if parts and source not in _warned:
        _warned.add(source)
        print(random_init_warning(source, parts), file=sys.stderr)
