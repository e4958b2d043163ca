"""A small named registry (after fvcore's): refuse conflicting names, and a miss lists the names
it knows (``resbench.errors.unknown``).

The rule for every registry in resbench: its built-in entries are one literal table, given to
the constructor in the module that defines the registry (``Registry("dataset", {"digits":
digits, ...})``), so importing a module never registers anything as a side effect and the
table is the one place to read what exists. ``register`` is an explicit call for extensions
added at run time; registering the same object under the same name again is a no-op.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from resbench.errors import unknown

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, axis: str, entries: Mapping[str, T] | None = None) -> None:
        self.axis = axis
        self._entries: dict[str, T] = {}
        for name, obj in (entries or {}).items():
            self.register(name, obj)

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Add ``obj`` as ``name`` (``register(name)`` alone returns a decorator doing so).

        Idempotent for the same object; another object under a taken name is refused.
        """
        def add(obj: T) -> T:
            known = self._entries.get(name)
            if known is not None and known is not obj:
                raise KeyError(f"{self.axis} {name!r} is already registered as {known!r}")
            self._entries[name] = obj
            return obj

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The entry ``name``; an unknown name is a ``SpecError`` listing the known ones."""
        try:
            return self._entries[name]
        except KeyError:
            raise unknown(self.axis, name, self.names()) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))
