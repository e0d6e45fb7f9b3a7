"""Shared click glue: every command turns library errors into one clear line (exit 1, no traceback)."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import click

from hoi_edge.errors import HOIEdgeError

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Re-raise :class:`HOIEdgeError` as a :class:`click.ClickException` so users see the message only."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HOIEdgeError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]
