"""Errors that mean "the user's input is wrong": the CLI prints them and exits 2, no traceback."""
from __future__ import annotations

import difflib
import os
import reprlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

QUOTE_LIMIT = 200
"""Characters of a user's value that any message quotes; the rest is counted, not shown."""
MESSAGE_LIMIT = 4000
"""Characters of one rendered message (its value, allowed names and further problems)."""
ALLOWED_LIMIT = 40
"""Allowed names a message lists."""


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
        more: Sequence[tuple[str, str]] = (),
        hidden: int = 0,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.path = path
        self.value = value
        self.allowed = list(allowed) if allowed is not None else None
        self.suggestion = suggestion
        self.more = list(more)  # further problems in the same input: (field path, message)
        self.hidden = hidden  # problems beyond those, counted only
        super().__init__(self._render())

    def _render(self) -> str:
        where = ": ".join(p for p in (self.file, self.path) if p)
        text = f"{where}: {self.message}" if where else self.message
        if self.allowed:
            names = [clip(str(a), 60) for a in self.allowed[:ALLOWED_LIMIT]]
            rest = len(self.allowed) - len(names)
            text += f" (allowed: {', '.join(names)}{f', ... ({rest} more)' if rest else ''})"
        if self.suggestion:
            text += f"; did you mean {shown(self.suggestion)}?"
        for path, message in self.more:
            text += f"\n  also {path}: {message}" if path else f"\n  also: {message}"
        if self.hidden:
            text += f"\n  (and {self.hidden} more problem{'s' if self.hidden > 1 else ''})"
        return clip(text, MESSAGE_LIMIT)

    def _copy(self, **changes: Any) -> SpecError:
        fields = dict(file=self.file, path=self.path, value=self.value, allowed=self.allowed,
                      suggestion=self.suggestion, more=self.more, hidden=self.hidden)
        return SpecError(self.message, **{**fields, **changes})

    def with_file(self, file: str | Path) -> SpecError:
        """The same error, located in ``file`` (kept if it already names one)."""
        if self.file:
            return self
        return self._copy(file=file)

    def under(self, prefix: str) -> SpecError:
        """The same error with its field path (and those of further problems) under ``prefix``."""
        return self._copy(path=join_path(prefix, self.path),
                          more=[(join_path(prefix, p), m) for p, m in self.more])


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
    return SpecError(f"unknown {kind} {shown(name)}{detail}", file=file, path=path, value=name,
                     allowed=known, suggestion=did_you_mean(str(name), map(str, known)))


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """The closest known name to a misspelt ``word``, if any is close enough."""
    matches = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return matches[0] if matches else None


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, QUOTE_LIMIT, QUOTE_LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 8


def shown(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, in bounded time and length whatever the value: at most
    ``limit`` characters of it, then ``... (N more characters)``; nested values are abridged
    (``[1, 2, ...]``), and an integer too long to print is described by its size."""
    if isinstance(value, str):
        head = repr(value[:limit])
        return head if len(value) <= limit else f"{head}... ({len(value) - limit} more characters)"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        return clip(_REPR.repr(value), limit)
    except Exception:  # a value whose repr fails (e.g. an int of > 4300 digits inside a list)
        return f"<a {type(value).__name__}>"


def interrupted(e: BaseException) -> bool:
    """Whether ``e`` was raised while a Ctrl-C was on its way out: a ``KeyboardInterrupt`` in its
    chain of causes and contexts. Library cleanup that fails as the interrupt passes through
    (``torch.save``'s zip writer closing a half-written file) raises its own error in its place,
    which would otherwise pass for a failure of the work."""
    chain, seen = [e], set()
    while chain:
        error = chain.pop()
        if error is None or id(error) in seen:
            continue
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        chain += [error.__cause__, error.__context__]
    return False


def first_line(e: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type's name if it has none), clipped to
    ``limit`` characters if given."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    line = text.splitlines()[0]
    return line if limit is None else clip(line, limit)


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, followed by how many were left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


NAME_MAX = 255  # bytes of one path component on common file systems (os.pathconf says more)
PATH_MAX = 4096


def check_path_text(text: str, *, what: str, file: str | Path | None = None,
                    path: str = "") -> str:
    """``text`` if it can name a file (no NUL byte, no lone surrogate, each component at most
    ``NAME_MAX`` bytes, all of it at most ``PATH_MAX``); otherwise a located :class:`SpecError`.

    The checks stat() or open() would fail with (ValueError, ENAMETOOLONG) become one clear
    message before anything touches the file system."""
    def refuse(problem: str) -> SpecError:
        return SpecError(f"{what} {problem}", file=file, path=path, value=text)

    if "\0" in text:
        raise refuse(f"contains a NUL byte: {shown(text)}")
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise refuse(f"is not valid text (a lone surrogate): {shown(text)}") from None
    if len(encoded) > PATH_MAX:
        raise refuse(f"is {len(encoded)} bytes long; a path may have at most {PATH_MAX}")
    for part in encoded.split(b"/"):
        if len(part) > NAME_MAX:
            raise refuse(f"has a path component of {len(part)} bytes; the file system allows "
                         f"at most {NAME_MAX}: {shown(os.fsdecode(part), 60)}")
    return text
