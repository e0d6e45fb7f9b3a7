"""A table of named entries that plugins and tests may extend: the export targets
(:mod:`hoi_edge.targets_registry`) and the detector families (:mod:`hoi_edge.model.detectors`) are each one."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


E = TypeVar("E", bound=Named)


class Registry(dict[str, E], Generic[E]):
    """``{entry.name: entry}`` in registration order; a name is registered once (a second registration is a
    programming error, not an override), and unregistering an absent name is a no-op (test teardown)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, entry: E) -> E:
        if entry.name in self:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self.pop(name, None)
