"""An experiment folder: ``manifest.json`` plus ``trials/<key>.json`` (see docs/ARCHITECTURE.md)."""
from __future__ import annotations

import platform
import re
import subprocess
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from resbench.canonical import json_ready
from resbench.errors import UserError, shown
from resbench.store._model import REQUIRED_KEYS, STATUSES, TrialRecord
from resbench.store._records import (
    check_inside,
    check_key,
    read_json,
    record_files,
    write_json_atomic,
)

MANIFEST = "manifest.json"
TRIALS = "trials"
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+")  # the whole name: fullmatch (``$`` allows a final newline)
MAX_NAME_BYTES = 255  # NAME_MAX of common file systems
_NAME_RULE = "letters, digits, '-', '_' and '.', not empty, no path separators, not '.' or '..'"


def experiment_dir(name: str, root: str | Path = "results") -> Path:
    """The folder of experiment ``name`` under ``root``; a name that could escape root is refused."""
    if not isinstance(name, str) or not name or not _NAME_RE.fullmatch(name) or set(name) == {"."}:
        raise UserError(f"invalid experiment name {shown(name, 80)}: use {_NAME_RULE}")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise UserError(f"invalid experiment name {shown(name, 80)}: {len(name.encode())} bytes long, "
                        f"the limit is {MAX_NAME_BYTES} (a folder name)")
    root_path = Path(root).resolve()
    path = (root_path / name).resolve()
    if path.parent != root_path:
        raise UserError(f"experiment name {name!r} resolves to {path}, outside {root_path}")
    return path


def now_iso() -> str:
    """Current UTC time, ISO-8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    """Reads and writes one experiment folder; every write is atomic."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.trials_dir = self.path / TRIALS
        # Nothing inside the experiment may lead out of the folder that holds it (symlinks).
        self.root = self.path.resolve().parent

    @property
    def name(self) -> str:
        return self.path.name

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # manifest ---------------------------------------------------------------------------------
    def write_manifest(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``fields`` into the manifest (new values win) and add the run environment.

        The first ``created`` time and ``versions`` are kept, so a resumed run does not
        rewrite when the experiment started.
        """
        current = self.read_manifest() if (self.path / MANIFEST).exists() else {}
        manifest: dict[str, Any] = {"name": self.name, "created": now_iso(),
                                    "versions": _versions(), "git_commit": _git_commit(),
                                    "host": platform.node(), "platform": platform.platform()}
        manifest.update(current)
        manifest.update(fields)
        manifest.setdefault("device", _device())
        if json_ready(manifest) != current:  # a rerun of finished work writes nothing (read-only)
            write_json_atomic(self.path / MANIFEST, manifest)
        return manifest

    def read_manifest(self) -> dict[str, Any]:
        """The manifest as written; a missing or malformed file is a UserError naming it."""
        data = read_json(self.path / MANIFEST)
        if not isinstance(data, dict):
            raise UserError(f"{self.path / MANIFEST}: the manifest must be a JSON object")
        return data

    # records ----------------------------------------------------------------------------------
    def record_path(self, key: str) -> Path:
        return self.inside(self.trials_dir / f"{check_key(key)}.json")

    def inside(self, path: Path) -> Path:
        """``path`` (under this experiment) if it and its folders lead nowhere outside the
        results root through a symlink; else a UserError naming the link."""
        for part in (*reversed(path.relative_to(self.path).parents), path.relative_to(self.path)):
            if part != Path("."):
                check_inside(self.path / part, self.root, f"'{part}' in experiment {self.name!r}")
        return path

    def write_record(self, record: TrialRecord | Mapping[str, Any]) -> Path:
        """Write one trial record atomically as ``trials/<key>.json`` (replacing an older one).

        A mapping is validated into a TrialRecord first; one that breaks the schema is a
        ValueError (a writer's bug), and nothing is written.
        """
        if not isinstance(record, TrialRecord):
            missing = [k for k in REQUIRED_KEYS if k not in record]
            if missing:
                raise ValueError(f"a trial record needs {', '.join(missing)}")
        record = TrialRecord.from_json(record)
        path = self.record_path(record.key)
        write_json_atomic(path, record.to_json())
        return path

    def read_record(self, key: str) -> TrialRecord:
        """One trial record, validated; a missing or corrupt one is a UserError naming the file."""
        return read_record_file(self.record_path(key))

    def records(self, *, strict: bool = True) -> Iterator[TrialRecord]:
        """Every trial record in key order; with ``strict=False`` corrupt ones are skipped with a warning."""
        if self.trials_dir.exists():
            self.inside(self.trials_dir)
        for path in record_files(self.trials_dir):
            try:
                yield read_record_file(self.inside(path))
            except UserError as e:
                if strict:
                    raise
                warnings.warn(f"skipping corrupt trial record: {e}", stacklevel=2)

    def keys(self) -> list[str]:
        """Keys of the stored records (from the file names, without reading them)."""
        return [p.stem for p in record_files(self.trials_dir)]

    def has(self, key: str, statuses: Iterable[str] = STATUSES) -> bool:
        """Whether a record for ``key`` exists with one of ``statuses`` (used to skip finished trials)."""
        path = self.record_path(key)
        if not path.exists():
            return False
        try:
            record = read_record_file(path)
        except UserError as e:
            raise UserError(f"{e}\n  a bad record is never counted as finished; "
                            f"`resbench store check {self.root} --move-aside` sets bad records "
                            "aside (into quarantine/), and a rerun trains those trials again") from None
        return record.status in tuple(statuses)


def read_record_file(path: Path) -> TrialRecord:
    """Read and validate one trial record; a bad one is a UserError naming the file and field.

    A record whose ``key`` is not its file's name (a file copied over another) is refused too:
    it would make a trial count as finished with another trial's results.
    """
    try:
        record = TrialRecord.from_json(read_json(path))
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if record.key != path.stem:
        raise UserError(f"{path}: the record's key {record.key!r} is not its file name "
                        f"{path.stem!r} (a record copied or renamed over another trial's)")
    return record


def _versions() -> dict[str, str | None]:
    """Python, torch and resbench versions; torch's from its metadata, so torch is not imported."""
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    import resbench

    return {"python": sys.version.split()[0], "torch": version("torch"),
            "resbench": resbench.__version__}


def _device() -> str | None:
    """The accelerator in use if torch is already loaded (never imported here), else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return "cpu"


def _git_commit() -> str | None:
    """The commit of the resbench checkout this code runs from, or None outside a git checkout."""
    source = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None
