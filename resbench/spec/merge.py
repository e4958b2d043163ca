"""The one deep merge of the spec language: ``_base_`` inheritance and recipe layers both use it.

Mappings merge recursively, anything else is replaced, and a mapping with integer keys overrides
list items by index (``stages: {2: {depth: 18}}``), so a child file or a recipe layer changes
one item of a list without repeating the others.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from resbench.errors import SpecError, join_path, shown


def merge(base: Any, override: Any, *, file: str | Path | None = None, path: str = "") -> Any:
    """``override`` on top of ``base`` (neither is modified); errors are located at ``file``,
    ``path``."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value, file=file, path=join_path(path, str(key))) \
                if key in base else value
        return out
    if isinstance(base, list) and isinstance(override, Mapping):
        out = list(base)
        for key, value in override.items():
            index = _list_index(key, len(out), file, path)
            out[index] = merge(out[index], value, file=file, path=f"{path}[{index}]")
        return out
    return override


def _list_index(key: Any, length: int, file: Any, path: str) -> int:
    """An integer key, or a string of digits (JSON keys are text); never a bool or a float
    (``int(True)`` and ``int(1.9)`` would silently pick item 1)."""
    index: int | None = None
    if isinstance(key, int) and not isinstance(key, bool):
        index = key
    elif isinstance(key, str) and key.strip().isdigit() and len(key) < 10:
        index = int(key)
    if index is None or not 0 <= index < length:
        raise SpecError(f"overriding a list by index needs integer indices 0..{length - 1}, "
                        f"got {shown(key)}", file=file, path=path, value=key)
    return index
