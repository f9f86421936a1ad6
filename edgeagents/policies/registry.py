"""A name -> factory registry that refuses duplicates and names the known entries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Registered factories by name, for one pluggable axis (routers, controllers, policies)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[[], T]] = {}

    def register(self, name: str, factory: Callable[[], T]) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory

    def create(self, name: str) -> T:
        try:
            factory = self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})"
            ) from None
        return factory()

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
