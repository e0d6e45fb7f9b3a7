"""What every training loop here shares (``train``'s :class:`train.trainer.Trainer`, ``distill``'s
:class:`train.student.StudentDistiller`): training checkpoints that are also ordinary hoi-edge checkpoints
(optimizer state, epoch and step in ``extra``), resuming from one, the JSON-lines log and the progress bar.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, TextIO, TypeVar

import torch
from tqdm import tqdm

from hoi_edge.core.atomic import atomic_write_text
from hoi_edge.core.errors import WeightsError
from hoi_edge.model.clip4hoi import CLIP4HOI
from hoi_edge.model.weights import check_state
from hoi_edge.weights.checkpoint import FROZEN_PREFIXES, read_checkpoint, save_checkpoint

C = TypeVar("C", bound="RunConfig")


class RunConfig:
    """Mixin of a run's dataclass config: saved as a dict in its checkpoints, read back ignoring unknown keys (a
    checkpoint of an older or newer hoi-edge)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in known})


def read_training_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(checkpoint, its ``extra``) of a checkpoint a training loop wrote; a clear error for a plain model file."""
    data = read_checkpoint(path)
    extra = data.get("extra") or {}
    if "optimizer" not in extra or "epoch" not in extra:
        raise WeightsError(f"{path} is not a training checkpoint (no optimizer state); use it as --init instead")
    return data, extra


def restore_training_state(model: CLIP4HOI, optimizer: torch.optim.Optimizer, data: dict[str, Any],
                           path: Path) -> None:
    """The weights and optimizer state of ``data`` (:func:`read_training_checkpoint`) into ``model``/``optimizer``,
    checked against the model first (the frozen parts only when the file holds them)."""
    state = data["state_dict"]
    own = {k: v for k, v in model.state_dict().items() if data["includes_frozen"] or not k.startswith(FROZEN_PREFIXES)}
    check_state(own, state, str(path))
    model.load_state_dict(state, strict=False)
    try:
        optimizer.load_state_dict(data["extra"]["optimizer"])
    except (ValueError, KeyError) as exc:
        raise WeightsError(f"optimizer state in {path} does not fit this model: {exc}") from exc


def save_training_checkpoint(model: CLIP4HOI, path: Path, optimizer: torch.optim.Optimizer, epoch: int, step: int,
                             include_frozen: bool = True, **extra: Any) -> Path:
    """A checkpoint that loads as a model anywhere and resumes its training run (written atomically)."""
    return save_checkpoint(model, path, include_frozen,
                           {"epoch": epoch, "step": step, "optimizer": optimizer.state_dict(), **extra})


@contextlib.contextmanager
def json_lines_log(path: Path | None, resumed_at: int | None = None) -> Iterator[TextIO | None]:
    """The run's JSON-lines log opened for appending (a run resumed from step ``resumed_at`` continues it, after
    :func:`trim_log`); None yields None (other ranks)."""
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if resumed_at is not None:
        trim_log(path, resumed_at)
    with path.open("a", encoding="utf-8") as log:
        yield log


def trim_log(path: Path, step: int) -> None:
    """Before a resumed run appends to ``path``: drop the records after the checkpoint's ``step`` (steps of a run
    killed before its next checkpoint, which the resumed run trains again) and a last line cut short by the
    kill, so the log reads as one run. Rewritten atomically; a log without such lines is left as it is."""
    if not path.is_file():
        return
    kept, changed = [], False
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            record = json.loads(line) if line.endswith("\n") else None
            whole = isinstance(record, dict) and int(record.get("step", 0)) <= step
        except (json.JSONDecodeError, TypeError, ValueError):
            whole = False
        if whole:
            kept.append(line)
        else:
            changed = True
    if changed:
        atomic_write_text(path, "".join(kept))


def write_record(log: TextIO | None, record: dict[str, Any]) -> None:
    """One record, flushed at once: an interrupted run keeps every step it finished."""
    if log is not None:
        log.write(json.dumps(record) + "\n")
        log.flush()


def step_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """The progress bar of one epoch's optimizer steps (on stderr, like every hoi-edge bar)."""
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, disable=not enabled, file=sys.stderr)
