"""Command-line value types: each checks one flag's value where argparse reads it, so a bad flag
is one ``error:`` line naming the flag (argparse's exit status 2), never a traceback later.

Used as ``parser.add_argument("--sampler-seed", type=seed32)``. The checks that need the file
system look only at what the value names (stat, never open or create)."""
from __future__ import annotations

import argparse
import math
import os
import typing
from pathlib import Path

from resbench.errors import check_path_text, clip, shown

class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser with the entry points' error policy: a bad or missing flag prints one
    ``error: <message>`` line to stderr and exits 2, as a ``UserError`` does (argparse itself
    would print the usage and ``prog: error: ...``). Subcommand parsers inherit it."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


SEED_LIMIT = 2**32
"""Seeds are in [0, 2^32): what numpy's and CUDA's generators (and Optuna's samplers) take."""
MAX_THREADS = 1024
VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
"""File systems of the kernel, never a place for results."""


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not an integer") from None


def seed32(text: str) -> int:
    """A seed in [0, 2^32)."""
    value = _integer(text)
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"a seed must be in [0, 2^32), got {shown(value)}")
    return value


def positive(text: str) -> int:
    """An integer >= 1 (trials, workers, epochs, ...)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {shown(value)}")
    return value


def threads(text: str) -> int:
    """CPU threads for torch: 0 (torch's default) up to :data:`MAX_THREADS`."""
    value = _integer(text)
    if not 0 <= value <= MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"must be 0 (torch's default) or a thread count up to {MAX_THREADS} "
            f"(this machine has {os.cpu_count()} cores), got {shown(value)}")
    return value


def input_size(text: str) -> int:
    """An input resolution within the spec language's bound (``Spec.input_size``)."""
    from resbench.spec.schema import MAX_INPUT_SIZE

    value = positive(text)
    if value > MAX_INPUT_SIZE:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_INPUT_SIZE}, got {shown(value)}")
    return value


MAX_WORKERS = 1024


def workers(text: str) -> int:
    """Worker processes: 1 up to :data:`MAX_WORKERS` (each is a process with its own torch)."""
    value = positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_WORKERS}, got {shown(value)}")
    return value


def retries(text: str) -> int:
    """Extra attempts of a failing trial: 0 to 100."""
    value = _integer(text)
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 100, got {shown(value)}")
    return value


def share(text: str) -> float:
    """A finite, non-negative resource share (CPUs or GPUs per trial; 0.5 shares a GPU)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number") from None
    if not math.isfinite(value) or value < 0 or value > 2**20:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {shown(text)}")
    return value


def name(text: str) -> str:
    """A non-empty name (an experiment, an objective list) of at most 200 characters."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if len(text) > 200:
        raise argparse.ArgumentTypeError(f"is {len(text)} characters long; at most 200 are "
                                         f"allowed: {shown(text, 60)}")
    return text


def path_text(text: str) -> str:
    """A path given on the command line: not empty (``""`` would silently mean the current
    folder), no NUL byte, no over-long component."""
    _path(text, "a file or folder")
    return text


def results_root(text: str) -> str:
    """A folder for experiments: not empty, not a file, not under /proc, /sys or /dev (it may
    not exist yet; it is created when results are written)."""
    path = _path(text, "a results folder")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{shown(text)} is a file, not a folder")
    resolved = path.resolve()
    for root in VIRTUAL_ROOTS:
        if resolved == root or root in resolved.parents:
            raise argparse.ArgumentTypeError(
                f"{shown(text)} is under {root}, a kernel file system, not a place for results")
    return text


def _path(text: str, what: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name {what}, not be empty")
    try:
        check_path_text(text, what="the path")
    except ValueError as exc:  # a SpecError
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def storage(text: str) -> str:
    """An Optuna storage: a journal file (a path ending in ``.journal``, in an existing folder),
    or an RDB URL that SQLAlchemy can parse and has a dialect for
    (``sqlite:///study.db``, ``postgresql://...``); an SQLite file must be a file (or not
    exist yet) in an existing folder, and not ``:memory:``, which worker processes cannot share."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must be an RDB URL such as sqlite:///study.db, "
                                         "not empty")
    if "://" not in text and text.endswith(".journal"):  # Optuna's journal file storage
        path = _path(text, "a journal file")
        if path.exists() and not path.is_file():
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a regular file")
        if not path.parent.resolve().is_dir():
            raise argparse.ArgumentTypeError(
                f"the folder of the journal file {shown(text)} does not exist")
        return text
    if "://" not in text:
        raise argparse.ArgumentTypeError(
            f"{shown(text)} is not a URL; an SQLite file is sqlite:///PATH "
            f"(sqlite:///{clip(text)}), a journal file a path ending in .journal")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(text)
        url.get_dialect()
    except NoSuchModuleError:  # (a subclass of ArgumentError)
        raise argparse.ArgumentTypeError(
            f"{shown(text)}: no database dialect {shown(url.drivername)} (sqlite, postgresql, "
            "mysql, ...)") from None
    except (ArgumentError, ValueError):
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a valid RDB URL") from None
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise argparse.ArgumentTypeError(
                "an in-memory SQLite study vanishes with its process and worker processes "
                "cannot share it; name a file: sqlite:///PATH")
        path = _path(database, "an SQLite file")
        if path.exists() and not path.is_file():
            raise argparse.ArgumentTypeError(f"{shown(database)} is not a regular file")
        if not path.parent.resolve().is_dir():
            raise argparse.ArgumentTypeError(
                f"the folder of the SQLite file {shown(database)} does not exist")
    return text
