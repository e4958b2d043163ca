"""Optuna's storage, reached through a study's private ``_storage`` and a trial's ``_trial_id``.

Why: a trial that a killed driver left RUNNING must be failed (and marked discarded) by
another process without telling the sampler about it (``Study.tell`` runs the sampler's
``after_trial`` and refuses trials it did not ask), and the Ray searcher must re-read one
trial's current state after a restore without fetching the whole study. Optuna has no public
call for either. Checked by ``tests/test_compat.py``; tested with optuna 4.x-5.0.

``quiet`` is here too, as the one place that touches Optuna's process-wide log level.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any


def stored_trial(study: Any, trial: Any) -> Any:
    """``trial`` (an ``optuna.Trial`` or ``FrozenTrial``) as the storage holds it now."""
    return study._storage.get_trial(trial._trial_id)


def fail_trial(study: Any, trial: Any, user_attrs: Mapping[str, Any]) -> None:
    """Set ``user_attrs`` on a RUNNING trial and fail it, straight in the storage."""
    from optuna.trial import TrialState

    for key, value in user_attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Optuna logs warnings only during the block (it logs every study and trial at INFO
    otherwise); its level is process-wide, so the caller's level is restored after."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)
