"""One search driver per experiment: locks held in the experiment folder while a search runs.

``search.lock`` is held exclusively by the driver of a search (either runner) for as long as it
runs; ``workers.lock`` is held shared by every local worker process (the driver's own, spawned
ones, and those of ``--join``). A second driver of the same experiment, a ``--resume`` while
another process still runs it in particular, is refused with a message naming the holder, since
resuming fails the trials the live process is running.

They are ``flock`` locks, which the kernel drops with the process that held them: the lock of a
driver that was killed (SIGKILL, the out-of-memory killer) is free at once, and the next driver
takes it over, with no stale-lock guessing. The files stay in the folder (removing one while
another process waits on it would let two processes hold "the" lock); they hold the last
holder's pid, host and start time, for the message only.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from resbench.errors import UserError
from resbench.store import now_iso

DRIVER_LOCK = "search.lock"
WORKERS_LOCK = "workers.lock"


@contextlib.contextmanager
def driver_lock(folder: Path, experiment: str) -> Iterator[None]:
    """Hold the experiment's driver lock for the block, or refuse if a live process holds it
    (or if worker processes of another run still hold theirs)."""
    with _flock(folder / DRIVER_LOCK, exclusive=True) as holder:
        if holder is not None:
            raise UserError(f"experiment {experiment!r} is being run by another process "
                            f"({_describe(holder)}); wait for it to end or stop it, then pass "
                            "--resume to continue it (--join adds workers to a running local "
                            "search that shares its storage)")
        with _flock(folder / WORKERS_LOCK, exclusive=True) as workers:
            if workers is not None:
                raise UserError(f"experiment {experiment!r} still has search worker processes "
                                "of another run (or of --join) running; wait for them to end "
                                "or stop them, then pass --resume")
        yield


@contextlib.contextmanager
def worker_lock(folder: Path) -> Iterator[None]:
    """Hold the experiment's workers lock (shared) while this process runs trials."""
    with _flock(folder / WORKERS_LOCK, exclusive=False) as holder:
        if holder is not None:  # only an exclusive holder blocks: a driver checking, briefly
            raise UserError(f"the search in {folder} is being started by another process "
                            f"({_describe(holder)}); try again")
        yield


@contextlib.contextmanager
def _flock(path: Path, *, exclusive: bool) -> Iterator[dict | None]:
    """Try to lock ``path`` without waiting: yields None when held, else what the holder wrote."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            yield _holder(fd)
            return
        if exclusive:  # a shared lock's file keeps the driver's words (many hold it)
            me = {"pid": os.getpid(), "host": socket.gethostname(), "started": now_iso()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield None
        finally:
            if exclusive:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "a process holds its lock"
    where = f" on {holder['host']}" if holder.get("host") else ""
    since = f", since {holder['started']}" if holder.get("started") else ""
    return f"pid {holder['pid']}{where}{since}"

