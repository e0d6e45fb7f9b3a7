"""Shared click glue: every command turns library errors into one clear line (exit 1, no traceback),
Ctrl-C ends a command with exit status 130 (the shell's convention for SIGINT), choices suggest the nearest
valid value, and every ``--help`` ends with examples (:func:`examples`)."""

from __future__ import annotations

import errno
import functools
from typing import Any, Callable, Sequence, TypeVar

import click

from hoi_edge.core.errors import HOIEdgeError
from hoi_edge.core.suggest import did_you_mean

F = TypeVar("F", bound=Callable[..., Any])
_WRITE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def friendly_errors(fn: F) -> F:
    """Re-raise :class:`HOIEdgeError` as a :class:`click.ClickException` so users see the message only."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HOIEdgeError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:   # an output location that turned out unwritable mid-run: one line, no traceback
            if exc.errno not in _WRITE_ERRNOS:
                raise
            where = f" {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"cannot write{where}: {exc.strerror}") from None

    return wrapper  # type: ignore[return-value]


class SuggestingChoice(click.Choice):
    """A case-insensitive choice whose error suggests the nearest valid value
    ('openvio' -> "did you mean 'openvino'?"). ``choices`` may be a function, read at each use (not when the
    command is declared), so a registry's entries added after import count and a registry that imports torch
    (the detector families) is read only when its command runs."""

    def __init__(self, choices: Sequence[str] | Callable[[], Sequence[str]]) -> None:
        self._source = choices if callable(choices) else None
        super().__init__(() if callable(choices) else list(choices), case_sensitive=False)

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return tuple(self._source()) if self._source is not None else self._fixed

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        self._fixed = tuple(value)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(unknown_choice_message(str(value), [str(c) for c in self.choices]), param, ctx)


def unknown_choice_message(value: str, choices: Sequence[str]) -> str:
    """"'openvio' is not one of openvino, onnx, executorch; did you mean 'openvino'?" """
    return f"{value!r} is not one of {', '.join(choices)}{did_you_mean(value, choices)}"


INTERRUPTED_EXIT_CODE = 130     # 128 + SIGINT, what a shell reports for a command stopped with Ctrl-C


class InterruptibleGroup(click.Group):
    """A group whose commands end with exit status 130 on Ctrl-C (click's own handling says 'Aborted!' and
    exits 1, which scripts cannot tell from a failure). Whatever the command finished is kept: commands
    write their results as they go (``detect`` flushes a JSON line per image)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED_EXIT_CODE) from None


def examples(*commands: str) -> str:
    """A ``--help`` epilog listing example command lines, kept as written (no re-wrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {c}" for c in commands)


def deprecated_alias(old: str, new: str, dest: str, **option_kwargs: Any) -> Callable[[F], F]:
    """Keep the old option name ``old`` working for ``dest`` (the parameter of ``new``), with a warning.

    The alias is hidden from ``--help``; giving both names is a usage error."""

    def decorate(fn: F) -> F:
        hidden = f"_alias_{dest}_{old.lstrip('-').replace('-', '_')}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(hidden, None)
            if value not in (None, ()):
                click.echo(f"warning: {old} is deprecated here, use {new}", err=True)
                if kwargs.get(dest) not in (None, ()):
                    raise click.UsageError(f"{old} is an old name of {new}; give only {new}")
                kwargs[dest] = value
            return fn(*args, **kwargs)

        return click.option(old, hidden, hidden=True, default=None, **option_kwargs)(wrapper)  # type: ignore

    return decorate
