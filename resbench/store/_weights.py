"""Final weights of a trial: ``<experiment>/weights/<key>.pt``, a state_dict named by the record.

The store only locates and loads them; ``resbench.train`` writes them when a trial completes.
torch and the compiler are imported inside ``load_model``, so the store stays torch-free.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from resbench.errors import UserError
from resbench.store._load import experiment_folders
from resbench.store._model import TrialRecord
from resbench.store._records import check_key
from resbench.store._store import TRIALS, Store, read_record_file

if TYPE_CHECKING:
    from torch import nn

WEIGHTS = "weights"


def weights_name(key: str) -> str:
    """The record's ``weights`` field for trial ``key``: relative to the experiment folder."""
    return f"{WEIGHTS}/{check_key(key)}.pt"


def find_trial(results_dir: str | Path, trial: str | TrialRecord) -> tuple[Path, TrialRecord]:
    """The experiment folder holding ``trial`` (a key or a record) and its record as stored.

    ``results_dir`` is an experiment folder or a results root holding several; a key found in
    none of them, or in more than one, is a UserError.
    """
    key = trial.key if isinstance(trial, TrialRecord) else str(trial)
    check_key(key)
    hits = [folder for folder in experiment_folders(results_dir)
            if (folder / TRIALS / f"{key}.json").is_file()]
    if isinstance(trial, TrialRecord) and trial.experiment:
        hits = [f for f in hits if f.name == trial.experiment] or hits
    if not hits:
        raise UserError(f"{results_dir}: no trial record {key!r}")
    if len(hits) > 1:
        raise UserError(f"{results_dir}: trial {key!r} is in several experiments "
                        f"({', '.join(f.name for f in hits)}); name one experiment folder")
    return hits[0], Store(hits[0]).read_record(key)


def weights_file(results_dir: str | Path, trial: str | TrialRecord) -> Path:
    """The final-weights file of a stored trial; one without saved weights is a UserError."""
    folder, record = find_trial(results_dir, trial)
    return _weights_of(folder, record)


def trial_weights(record_file: str | Path) -> Path:
    """The weights of the trial whose record is ``record_file`` (``<exp>/trials/<key>.json``)."""
    path = Path(record_file)
    record = read_record_file(path)
    return _weights_of(path.resolve().parent.parent, record)


def _weights_of(folder: Path, record: TrialRecord) -> Path:
    if not record.weights:
        why = (f"its status is {record.status}" if record.status != "completed"
               else "it ran with save_weights: false or before weights were kept")
        raise UserError(f"{folder / TRIALS / (record.key + '.json')}: trial {record.key} has no "
                        f"saved weights ({why})")
    path = (folder / record.weights).resolve()
    if path.parent != (folder / WEIGHTS).resolve():
        raise UserError(f"{folder}: trial {record.key}: weights {record.weights!r} lie outside "
                        f"{folder / WEIGHTS}")
    if not path.is_file():
        raise UserError(f"{path}: weights file of trial {record.key} is missing")
    return path


def load_model(results_dir: str | Path, trial: str | TrialRecord) -> nn.Module:
    """The trained network of a stored trial, in eval mode on the CPU.

    ``trial`` is a key or a record; its spec comes from the record (the spec it trained, adapted
    to its data), its weights from ``weights/<key>.pt`` (loaded with ``weights_only=True``).
    """
    import torch

    from resbench.compile import build
    from resbench.spec import parse_spec

    folder, record = find_trial(results_dir, trial)
    path = _weights_of(folder, record)
    model = build(parse_spec(dict(record.spec), file=folder / TRIALS / f"{record.key}.json"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # a corrupt file, or weights of another architecture
        raise UserError(f"{path}: cannot load the weights of trial {record.key}: {e}") from None
    return model.eval()
