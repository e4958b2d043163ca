"""``resbench store check``: find every file of a results folder that resbench would refuse.

A bad record (unreadable, not JSON, failing the ``TrialRecord`` schema, or whose ``key`` is not
its file name), a manifest that is not a JSON object, a temp file a killed writer left, and a
symlink inside an experiment that leads outside the results root are each listed with the
reason; ``move_aside`` moves them (links themselves, never their targets) to
``<experiment>/quarantine/``, keeping their paths, so that a rerun trains those trials again.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from resbench.errors import UserError
from resbench.store._load import Paths, experiment_folders
from resbench.store._records import check_inside, writing
from resbench.store._store import MANIFEST, TRIALS, Store, read_record_file

QUARANTINE = "quarantine"
CHECKED = (TRIALS, "checkpoints", "claims")  # the folders whose links must stay inside the root


@dataclass(frozen=True)
class Problem:
    """One bad file: where it is, which experiment holds it, and why it is refused."""

    path: Path
    experiment: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def check(path_or_paths: Paths) -> list[Problem]:
    """Every bad file in the experiment folders named (each one, or a root holding several)."""
    problems: list[Problem] = []
    links_out: list[Path] = []
    for folder in experiment_folders(path_or_paths, links_out=links_out):
        problems += _check_experiment(Store(folder))
    for link in links_out:  # an experiment folder in a root, linked from outside it
        problems.append(Problem(link, link.parent,
                                f"the experiment folder is a symlink to {link.resolve()}, "
                                f"outside the results folder {link.parent.resolve()}"))
    return problems


def _check_experiment(store: Store) -> list[Problem]:
    found: list[Problem] = []

    def bad(path: Path, reason: str) -> None:
        found.append(Problem(path, store.path, reason))

    manifest = store.path / MANIFEST
    if manifest.exists() or manifest.is_symlink():
        try:
            store.inside(manifest)
            store.read_manifest()
        except UserError as e:
            bad(manifest, _reason(e, manifest))
    for name in CHECKED:
        folder = store.path / name
        if not folder.is_symlink() and not folder.exists():
            continue
        try:
            check_inside(folder, store.root, f"'{name}' in experiment {store.name!r}")
        except UserError as e:
            bad(folder, _reason(e, folder))
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                try:
                    check_inside(path, store.root, "a file of the experiment")
                except UserError as e:
                    bad(path, _reason(e, path))
                    continue
            if name == TRIALS and path.parent == folder:
                _check_record_file(path, bad)
    return found


def _check_record_file(path: Path, bad) -> None:
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        bad(path, "a temp file left by an interrupted write (ignored by readers)")
    elif path.suffix == ".json" and not path.name.startswith("."):
        try:
            read_record_file(path)
        except UserError as e:
            bad(path, _reason(e, path))


def _reason(error: UserError, path: Path) -> str:
    """The error's message without the path it starts with (the listing shows it first)."""
    return str(error).removeprefix(f"{path}: ")


def move_aside(problems: Iterable[Problem]) -> list[tuple[Path, Path]]:
    """Move each bad file into ``<experiment>/quarantine/`` under its own relative path (a
    number is added if that name is taken); returns ``(from, to)`` pairs."""
    moved = []
    for problem in problems:
        relative = problem.path.relative_to(problem.experiment)
        target = problem.experiment / QUARANTINE / relative
        n = 1
        while target.exists() or target.is_symlink():
            target = target.with_name(f"{relative.name}.{n}")
            n += 1
        with writing(target.parent):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(problem.path, target)  # a symlink is moved itself, never its target
        moved.append((problem.path, target))
    return moved
