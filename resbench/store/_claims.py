"""Claims: which process trains a trial now, and how many runs of it ended without a record.

``claims/<key>.json`` holds the claiming process (pid, host, the process's start time, so a
reused pid is not taken for it) and the attempt number. It is created with
``O_CREAT | O_EXCL`` and every claim, takeover and release happens under an exclusive
``flock`` of ``claims/.lock``, so of several processes on the same results folder exactly one
trains a trial. A finished trial's claim is removed with its record written; a claim whose
process is gone (SIGKILL, the out-of-memory killer, a power cut) stays behind and marks the
attempt, so the next run takes it over as the next attempt, and after ``max_attempts`` such
runs records the trial failed instead of starting it first once more.

Whether a process lives is known on its own host only: a claim from another host counts as
live (remove ``claims/<key>.json`` by hand if that process is known to be gone).
"""
from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from resbench.errors import UserError
from resbench.store._records import check_inside, read_json, write_json_atomic, writing

CLAIMS = "claims"
LOCK = ".lock"


@dataclass(frozen=True)
class Owner:
    """The process that holds (or held) a claim."""

    pid: int
    host: str
    process_start: str | None  # /proc/<pid>/stat start time (clock ticks since boot)
    attempt: int  # 1 for the first run of the trial, 2 for the run after a killed one, ...
    claimed_at: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Claim:
    """What ``Claims.acquire`` found: ``state`` is ``claimed`` (this process runs it now, as
    ``owner.attempt``), ``busy`` (a live process runs it) or ``exhausted`` (``owner.attempt``
    runs ended without a record: the last owner is given)."""

    state: str
    owner: Owner


def _process_start(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (after the command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _alive(owner: Owner) -> bool:
    if owner.pid <= 0:  # never signal a process group (0, -1: every process)
        return False
    if owner.host != platform.node():
        return True  # cannot tell from here: count it as live
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{owner.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: the pid exists
    if state in ("Z", "X"):  # killed, not yet reaped by its parent
        return False
    return owner.process_start is None or _process_start(owner.pid) == owner.process_start


class Claims:
    """The claims of one experiment folder (``<experiment>/claims/``)."""

    def __init__(self, experiment_path: Path, *, max_attempts: int = 2) -> None:
        if max_attempts < 1:
            raise UserError(f"max attempts must be at least 1, got {max_attempts}")
        self.folder = Path(experiment_path) / CLAIMS
        self.max_attempts = max_attempts
        self.me = (os.getpid(), platform.node(), _process_start(os.getpid()))

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl  # POSIX; imported here so that the store still loads elsewhere

        experiment = self.folder.parent
        check_inside(self.folder, experiment.resolve().parent, f"'{CLAIMS}' in experiment "
                     f"{experiment.name!r}")
        with writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _owner(self, attempt: int) -> Owner:
        from resbench.store._store import now_iso

        pid, host, start = self.me
        return Owner(pid, host, start, attempt, now_iso())

    def _read(self, key: str) -> Owner | None:
        """The claim's owner; None if it is unreadable (a process killed while writing it)."""
        try:
            data = read_json(self.path(key))
            owner = Owner(**{f: data[f] for f in Owner.__dataclass_fields__})
        except (UserError, KeyError, TypeError):
            return None
        typed = isinstance(owner.pid, int) and isinstance(owner.attempt, int) and \
            isinstance(owner.host, str) and isinstance(owner.process_start, (str, type(None)))
        return owner if typed else None

    def mine(self, owner: Owner) -> bool:
        return (owner.pid, owner.host, owner.process_start) == self.me

    def acquire(self, key: str) -> Claim:
        """Claim trial ``key`` for this process unless a live process holds it (see Claim)."""
        with self._locked():
            path = self.path(key)
            if not path.exists():
                owner = self._owner(1)
                with writing(self.folder):
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                    try:
                        with os.fdopen(fd, "w", encoding="utf-8") as f:
                            json.dump(asdict(owner), f)
                            f.flush()
                            os.fsync(f.fileno())
                    except BaseException:
                        path.unlink(missing_ok=True)  # a full disk leaves no empty claim
                        raise
                return Claim("claimed", owner)
            held = self._read(key)
            if held is None:  # its writer died while writing it: a dead first attempt
                held = Owner(0, "", None, 1, "")
            elif self.mine(held):
                return Claim("claimed", held)
            elif _alive(held):
                return Claim("busy", held)
            if held.attempt >= self.max_attempts:
                return Claim("exhausted", held)
            owner = self._owner(held.attempt + 1)
            write_json_atomic(path, asdict(owner))
            return Claim("claimed", owner)

    def release(self, key: str) -> None:
        """Drop this process's claim on ``key`` (after its record is written, or on Ctrl-C),
        or a dead process's exhausted claim once its failure is recorded."""
        with self._locked():
            held = self._read(key)
            if held is None or self.mine(held) or not _alive(held):  # never a live other's
                with writing(self.folder):
                    self.path(key).unlink(missing_ok=True)
