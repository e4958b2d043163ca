"""Ray Tune internals: ``OptunaSearch``'s private state, a restored ``Tuner``'s run config, and
the period of Tune's experiment snapshots.

Why:

* ``OptunaSearch`` keeps its Optuna study (``_ot_study``), the Optuna trial of each Tune trial
  (``_ot_trials``) and the Tune trials it has told Optuna about (``_completed_trials``) in
  private attributes. resbench's searcher tells Optuna the true outcome of each trial itself
  (pruned, infeasible, failed; upstream tells scheduler stops as complete) and, after a
  restore, must know which trials were told already. There are no public accessors.
* ``Tuner.restore`` brings back the old driver's callbacks with the pickled run config and takes
  none of its own; the restored tuner's run config (``Tuner._local_tuner._run_config``) is the
  only place to give it this driver's callbacks.
* Tune's driver reads the snapshot period only from the environment variable
  ``TUNE_GLOBAL_CHECKPOINT_S`` (``TuneController.__init__``); ``snapshot_period`` sets it while
  the search runs and restores it afterwards.

Checked by ``tests/test_compat.py``; tested with ray 2.40-2.60.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"


def optuna_study(searcher: Any) -> Any:
    """The Optuna study an ``OptunaSearch`` asks and tells."""
    return searcher._ot_study


def optuna_trial(searcher: Any, trial_id: str) -> Any | None:
    """The Optuna trial an ``OptunaSearch`` opened for Tune trial ``trial_id``, if any."""
    return searcher._ot_trials.get(trial_id)


def is_told(searcher: Any, trial_id: str) -> bool:
    """Whether the searcher has already told Optuna the outcome of ``trial_id``."""
    return trial_id in searcher._completed_trials


def mark_told(searcher: Any, trial_id: str) -> None:
    """Record that the outcome of ``trial_id`` was told (OptunaSearch then ignores it)."""
    searcher._completed_trials.add(trial_id)


def set_callbacks(tuner: Any, callbacks: Sequence[Any]) -> None:
    """Give a tuner from ``Tuner.restore`` this driver's callbacks instead of the pickled ones."""
    tuner._local_tuner._run_config.callbacks = list(callbacks)


@contextlib.contextmanager
def snapshot_period(seconds: float) -> Iterator[None]:
    """Tune snapshots its experiment state every ``seconds`` during the ``with`` block, unless
    the user set ``TUNE_GLOBAL_CHECKPOINT_S`` themselves; the environment is as it was after."""
    if SNAPSHOT_ENV in os.environ:
        yield
        return
    os.environ[SNAPSHOT_ENV] = f"{seconds:g}"
    try:
        yield
    finally:
        os.environ.pop(SNAPSHOT_ENV, None)
