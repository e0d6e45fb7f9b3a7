"""Honesty about random weights: which parts of a model were never trained or loaded, and the one
warning every loading path (PyTorch checkpoint or exported artifact) prints about it."""

from __future__ import annotations

import os
import sys
from typing import Any

_warned = False     # one warning per command: a command that loads a model twice (export, validate) says it once
WARNED_ENV = "HOI_EDGE_RANDOM_WARNED"   # ... also in the worker processes it starts (they inherit it)
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


def warn_random_init(source: str, parts: list[str], message: str | None = None) -> None:
    """Print :func:`random_init_warning` (or ``message``, a more specific one) to stderr, once per process:
    the first model a command resolves (the default model says which of its parts are real) is the one
    the user asked for, and the later loads of the same weights add nothing but noise."""
    global _warned
    if parts and not _warned and os.environ.get(WARNED_ENV) != "1":
        _warned = True
        os.environ[WARNED_ENV] = "1"
        print(message or random_init_warning(source, parts), file=sys.stderr)
