"""A small named registry (after fvcore's): register by decorator, refuse duplicates, and a miss
lists the names it knows."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from resbench.errors import did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, axis: str) -> None:
        self.axis = axis
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise KeyError(f"{self.axis} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            hint = did_you_mean(name, self._entries)
            msg = f"unknown {self.axis} {name!r}; known: {', '.join(sorted(self._entries))}"
            raise KeyError(msg + (f"; did you mean {hint!r}?" if hint else "")) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))
