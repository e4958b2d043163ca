"""Errors that mean "the user's input is wrong": the CLI prints them and exits 2, no traceback."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class UserError(Exception):
    """A mistake in the user's input (a file, a flag, a value). Printed without a traceback."""

    exit_code = 2


class SpecError(UserError, ValueError):
    """A spec, recipe, suite or search-space file is invalid.

    Carries where (file, field path such as ``stages[2].shortcut``), the offending value and what
    is allowed, so that the message alone is enough to fix the file.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        path: str = "",
        value: Any = None,
        allowed: Sequence[Any] | None = None,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.path = path
        self.value = value
        self.allowed = list(allowed) if allowed is not None else None
        self.suggestion = suggestion
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(p for p in (self.file, self.path) if p)
        text = f"{where}: {self.message}" if where else self.message
        if self.allowed:
            text += f" (allowed: {', '.join(map(str, self.allowed))})"
        if self.suggestion:
            text += f"; did you mean {self.suggestion!r}?"
        return text

    def with_file(self, file: str | Path) -> SpecError:
        """The same error, located in ``file`` (kept if it already names one)."""
        if self.file:
            return self
        return SpecError(self.message, file=file, path=self.path, value=self.value,
                         allowed=self.allowed, suggestion=self.suggestion)

    def under(self, prefix: str) -> SpecError:
        """The same error with its field path nested under ``prefix``."""
        path = join_path(prefix, self.path)
        return SpecError(self.message, file=self.file, path=path, value=self.value,
                         allowed=self.allowed, suggestion=self.suggestion)


def join_path(prefix: str, rest: str) -> str:
    """Join field paths: ``join_path("stages[1]", "shortcut") == "stages[1].shortcut"``."""
    if not prefix:
        return rest
    if not rest:
        return prefix
    return prefix + rest if rest.startswith("[") else f"{prefix}.{rest}"


def unknown(kind: str, name: Any, known: Iterable[Any], *, file: str | Path | None = None,
            path: str = "", detail: str = "") -> SpecError:
    """The one "unknown name" error: what was asked for, every name that exists, the closest.

    ``unknown("dataset", "cifar", names)`` reads ``unknown dataset 'cifar' (allowed: cifar10,
    cifar100, ...); did you mean 'cifar10'?``, located at ``file`` and ``path`` when given.
    """
    known = list(known)
    return SpecError(f"unknown {kind} {name!r}{detail}", file=file, path=path, value=name,
                     allowed=known, suggestion=did_you_mean(str(name), map(str, known)))


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """The closest known name to a misspelt ``word``, if any is close enough."""
    matches = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return matches[0] if matches else None
