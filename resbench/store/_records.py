"""Trial records on disk: one JSON file per trial, written atomically (the schema is ``_model``)."""
from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from resbench.canonical import canonical_json, content_key
from resbench.canonical import json_ready as _plain
from resbench.errors import UserError, first_line

MAX_JSON_BYTES = 64 * 2**20  # a record or manifest is kilobytes; refuse to read a huge file
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # whole string: fullmatch (never ``$``)


def trial_key(canonical_spec: Mapping[str, Any], recipe: Mapping[str, Any], seed: int) -> str:
    """The trial's identity: 16 hex chars of sha256 over canonical spec + resolved recipe + seed."""
    return content_key({"spec": canonical_spec, "recipe": recipe, "seed": int(seed)})


def check_key(key: str) -> str:
    """A record key is a plain file stem: letters, digits, `-` and `_` only."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        shown = repr(key) if len(repr(key)) <= 80 else f"{repr(key)[:80]}..."
        raise UserError(f"invalid trial key {shown}: use 1-128 letters, digits, '-' or '_'")
    return key


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers see the old file or the new one, never half of one.

    A temp file in the same directory is written, fsynced and renamed over the target; its name
    starts with a dot and ends in ``.tmp``, so readers ignore one left by a killed process. A
    failed write (disk full, read-only folder) removes its temp file and is a UserError naming
    the folder (``StoreWriteError``).
    """
    text = json.dumps(_plain(data), indent=1, sort_keys=False, allow_nan=False) + "\n"
    with writing(path.parent):
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


class StoreWriteError(UserError):
    """The results folder cannot be written (disk full, read-only, not a folder)."""


@contextmanager
def writing(folder: Path) -> Iterator[None]:
    """Turn an OSError while writing under ``folder`` into one StoreWriteError naming it."""
    try:
        yield
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        hint = {errno.ENOSPC: "free some space and rerun (finished trials are kept)",
                errno.EDQUOT: "free some space and rerun (finished trials are kept)",
                errno.EROFS: "choose a writable --results folder",
                errno.EACCES: "choose a writable --results folder",
                errno.EPERM: "choose a writable --results folder"}.get(e.errno, "")
        culprit = Path(os.fsdecode(e.filename)) if e.filename else None
        if culprit is not None and culprit.parent != folder and culprit != folder:
            reason += f" ({culprit})"  # e.g. a file standing where a folder above should be
        raise StoreWriteError(f"cannot write to {folder}: {reason}"
                              f"{f'; {hint}' if hint else ''}") from None


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
    """Parse a JSON file, turning a missing, unreadable or malformed file into a UserError naming it."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read: {os.strerror(e.errno) if e.errno else e}") from None
    if len(raw) > MAX_JSON_BYTES:
        raise UserError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB; not a resbench file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); the file is corrupt") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError) as e:  # an over-long integer, or nesting too deep
        raise UserError(f"{path}: not valid JSON ({first_line(e, 200)})") from None


def record_files(trials_dir: Path) -> Iterator[Path]:
    """Record files in key order; hidden files (an interrupted write's temp file) are skipped."""
    if not trials_dir.is_dir():
        return iter(())
    return iter(sorted(p for p in trials_dir.glob("*.json") if not p.name.startswith(".")))


def check_inside(path: Path, root: Path, what: str) -> Path:
    """``path`` itself if it (following every symlink) stays inside ``root``; else a UserError.

    Guards the folders and files of an experiment (``trials/``, ``checkpoints/``, a record) so
    that a symlink planted inside it cannot make resbench read or write outside the results root.
    """
    resolved = path.resolve()
    root = root.resolve()
    if resolved != root and root not in resolved.parents:
        raise UserError(f"{path}: {what} is a symlink to {resolved}, outside the results folder "
                        f"{root}; remove the link (resbench never follows links out of it)")
    return path
