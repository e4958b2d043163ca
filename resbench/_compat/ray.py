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
* Tune turns the first Ctrl-C into a quiet, orderly stop (``fit()`` returns as if done) unless
  ``TUNE_DISABLE_SIGINT_HANDLER`` is set; ``sigint_raises`` sets it for ``fit()`` so Ctrl-C
  raises ``KeyboardInterrupt`` in the driver, as it does in the local runner.
* ``ray start --head`` turns token authentication on when this machine has a token (Ray writes
  one to ``~/.ray/auth_token`` the first time ``ray.init()`` starts a local cluster), but a
  driver given an explicit address never turns it on itself (only ``address="auto"`` does), so
  ``ray.init(address=HOST:PORT)`` is refused ("InvalidAuthToken") after a 20 s wait. Ray reads
  the mode only from ``RAY_AUTH_MODE``, into its C++ config (``ray._raylet.Config.initialize``);
  whether a token exists is ``AuthenticationTokenLoader.has_token``. ``token_auth`` turns token
  mode on for the length of one attached search when the user left ``RAY_AUTH_MODE`` unset and
  this machine has a token, and puts both back afterwards.

Checked by ``tests/test_compat.py``; tested with ray 2.40-2.60.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"
AUTH_MODE_ENV = "RAY_AUTH_MODE"


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


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment during the block unless the user set ``name``."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def sigint_raises() -> contextlib.AbstractContextManager[None]:
    """Ctrl-C during ``Tuner.fit()`` raises ``KeyboardInterrupt`` (Tune's own handler stops the
    run quietly instead), unless the user set ``TUNE_DISABLE_SIGINT_HANDLER`` themselves."""
    return _env(SIGINT_ENV, "1")


def has_token() -> bool:
    """Whether this machine has a Ray authentication token (``RAY_AUTH_TOKEN``,
    ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), whatever the mode. A Ray without token
    authentication (older than the series tested) has none."""
    try:
        from ray._raylet import AuthenticationTokenLoader
    except ImportError:
        return False
    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    return bool(loader.has_token(ignore_auth_mode=True))


@contextlib.contextmanager
def token_auth() -> Iterator[str]:
    """Token authentication on while attaching to a cluster and running on it, when the user
    left ``RAY_AUTH_MODE`` unset and this machine has a token; yields the mode in force
    (``token``, ``disabled`` or what the user set)."""
    if AUTH_MODE_ENV in os.environ:
        yield os.environ[AUTH_MODE_ENV]
        return
    if not has_token():
        yield "disabled"
        return
    from ray._raylet import Config  # present wherever has_token() found a token loader

    os.environ[AUTH_MODE_ENV] = "token"
    Config.initialize("")
    try:
        yield "token"
    finally:
        os.environ.pop(AUTH_MODE_ENV, None)
        Config.initialize("")
