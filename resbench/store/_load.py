"""Results folders → pandas DataFrames: one row per trial, or long tables of curves/gradient flow."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resbench.errors import UserError
from resbench.store._model import TrialRecord
from resbench.store._records import check_inside
from resbench.store._store import MANIFEST, TRIALS, Store

if TYPE_CHECKING:
    import pandas as pd

Paths = str | Path | Iterable[str | Path]
ID_COLUMNS = ("experiment", "key", "spec_name", "spec_key", "seed", "status", "reason")
LONG_ID_COLUMNS = ("experiment", "key", "spec_name", "seed", "status")


def load(path_or_paths: Paths, *, strict: bool = True) -> pd.DataFrame:
    """One row per trial across experiment folders (or results roots holding several).

    Columns: ``experiment, key, spec_name, spec_key, seed, status, reason``, every ``summary``
    field, every metric, ``recipe.<field>`` and ``search.<field>`` (nested mappings flattened
    with dots), ``started_at``, ``finished_at``. With ``strict=False`` corrupt records are
    skipped with a warning instead of raising.
    """
    return records_frame(_records(path_or_paths, strict))


def records_frame(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """The table ``load`` makes, from records already in hand (e.g. a suite run's)."""
    import pandas as pd

    rows = [_row(r.to_json()) for r in records]
    frame = pd.DataFrame(rows, columns=None if rows else list(ID_COLUMNS))
    return frame[[*ID_COLUMNS, *(c for c in frame.columns if c not in ID_COLUMNS)]]


def load_curves(path_or_paths: Paths, *, strict: bool = True) -> pd.DataFrame:
    """Per-epoch curves, one row per (trial, epoch), keyed by ``key`` (+ experiment, spec_name, seed, status)."""
    return _long(path_or_paths, "curves", ("epoch",), strict)


def load_grad_flow(path_or_paths: Paths, *, strict: bool = True) -> pd.DataFrame:
    """Gradient-flow probe, one row per (trial, step, block), keyed like ``load_curves``."""
    return _long(path_or_paths, "grad_flow", ("step", "block", "index", "grad_norm"), strict)


def _long(path_or_paths: Paths, field: str, columns: tuple[str, ...], strict: bool) -> pd.DataFrame:
    import pandas as pd

    rows = [{**{c: getattr(r, c) for c in LONG_ID_COLUMNS}, **entry.to_json()}
            for r in _records(path_or_paths, strict) for entry in getattr(r, field)]
    return pd.DataFrame(rows, columns=None if rows else [*LONG_ID_COLUMNS, *columns])


def experiment_folders(path_or_paths: Paths, *,
                       links_out: list[Path] | None = None) -> list[Path]:
    """The experiment folders named by the arguments: each is one, or a root holding several.

    In a root, an experiment folder that is a symlink leading outside it is refused (a
    UserError), or, with a ``links_out`` list, appended to it and left out.
    """
    paths = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not paths:
        raise UserError("no results folders given")
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise UserError(f"results folder not found: {path}")
        if _is_experiment(path):
            found = [path]
        else:
            found, out = [], []
            for p in sorted(path.iterdir()):
                if p.is_dir() and _is_experiment(p):
                    try:
                        found.append(check_inside(p, path, "the experiment folder"))
                    except UserError:
                        if links_out is None:
                            raise
                        out.append(p)
            if links_out is not None:
                links_out += out
            if out and not found:
                continue
        if not found:
            raise UserError(f"{path}: no experiment here (no {MANIFEST} or {TRIALS}/, "
                            "and no subfolder holding them)")
        folders += [f for f in found if f.resolve() not in {g.resolve() for g in folders}]
    return folders


def _is_experiment(path: Path) -> bool:
    return (path / MANIFEST).is_file() or (path / TRIALS).is_dir()


def _records(path_or_paths: Paths, strict: bool) -> Iterator[TrialRecord]:
    folders = experiment_folders(path_or_paths)
    count = 0
    for folder in folders:
        for record in Store(folder).records(strict=strict):
            count += 1
            yield record
    if count == 0:
        raise UserError(f"no trial records in {', '.join(str(f / TRIALS) for f in folders)}")


def _row(record: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {c: record.get(c) for c in ID_COLUMNS}
    for section in ("summary", "metrics"):
        for name, value in (record.get(section) or {}).items():
            row[f"{section}.{name}" if name in row else name] = _cell(value)
    for section in ("recipe", "search"):
        row.update(_flatten(record.get(section) or {}, section))
    row["started_at"] = record.get("started_at")
    row["finished_at"] = record.get("finished_at")
    return row


def _flatten(data: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` under ``recipe`` → ``{"recipe.a.b": 1}``."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, key))
        else:
            out[key] = _cell(value)
    return out


def _cell(value: Any) -> Any:
    """Lists become tuples so that columns can be grouped on and compared."""
    if isinstance(value, list):
        return tuple(_cell(v) for v in value)
    return value
