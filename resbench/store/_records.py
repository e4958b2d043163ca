"""Trial records on disk: one JSON file per trial, written atomically (the schema is ``_model``)."""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from resbench.canonical import canonical_json, content_key
from resbench.canonical import json_ready as _plain
from resbench.errors import UserError

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def trial_key(canonical_spec: Mapping[str, Any], recipe: Mapping[str, Any], seed: int) -> str:
    """The trial's identity: 16 hex chars of sha256 over canonical spec + resolved recipe + seed."""
    return content_key({"spec": canonical_spec, "recipe": recipe, "seed": int(seed)})


def check_key(key: str) -> str:
    """A record key is a plain file stem: letters, digits, `-` and `_` only."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise UserError(f"invalid trial key {key!r}: use 1-128 letters, digits, '-' or '_'")
    return key


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one.

    A temp file in the same directory is written, fsynced and renamed over the target; its name
    starts with a dot and ends in ``.tmp``, so readers ignore one left by a killed process.
    """
    text = json.dumps(_plain(data), indent=1, sort_keys=False, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning a missing or malformed file into a UserError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def record_files(trials_dir: Path) -> Iterator[Path]:
    """Record files in key order; hidden files (an interrupted write's temp file) are skipped."""
    if not trials_dir.is_dir():
        return iter(())
    return iter(sorted(p for p in trials_dir.glob("*.json") if not p.name.startswith(".")))
