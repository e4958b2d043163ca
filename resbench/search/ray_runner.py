"""The Ray Tune runner: Optuna as the searcher, ASHA as the scheduler, one function trainable
per trial calling ``run_trial``, and a per-epoch checkpoint so trials can pause, move and retry.

How it fits the rest:

* The searcher is :class:`StoredOptunaSearch`, Ray's ``OptunaSearch`` over the space's
  define-by-run function, with its study kept in the experiment's SQLite file (as the local
  runner's is), so the searcher's history survives a killed driver even if Tune's pickled copy
  of it did not. It also tells Optuna the truth about each trial: stopped by the scheduler →
  *pruned* (upstream tells those as *complete* with their last value), infeasible → *pruned*,
  an error after all retries → *failed*.
* The trainable checks the cost constraints and the results store before training, reports the
  metric each epoch (except the last, so ASHA's stop at ``max_t`` never cuts off the end of
  ``run_trial``) with the epoch's checkpoint, and writes the final record itself.
* :class:`RecordWriter`, a driver-side callback, writes the records the trainable cannot: trials
  stopped by the scheduler (with their curves so far) and trials that failed after retries. It
  also writes every final record again, so a cluster without a shared file system still gets
  all records on the driver.
* Resume (``--resume``) is ``Tuner.restore`` with Tune's pickled searcher, checked for real by
  killing a driver in ``tests/search/test_ray.py``. Tune's snapshot (taken each second here)
  can be older than what happened before the kill, and each consequence is handled: a trial
  that finished after the snapshot runs again but returns at once with its stored record (no
  trial is trained twice; its Optuna trial, already told, is left alone); an Optuna trial asked
  after the snapshot is discarded as interrupted and not counted; every epoch checkpoint is
  kept until the search ends, since the snapshot may name any of them.

Cluster: ``ray start --head --port=6379`` on one machine, ``ray start --address=HEAD:6379`` on
each worker, then ``resbench search SPACE --runner ray --address HEAD:6379``; without
``--address`` a local cluster starts in-process (see ``resbench search --help``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from resbench.errors import UserError
from resbench.search.candidate import (
    DATA_SETS_PER_WORKER,
    make_candidate,
    search_info,
    untrained_record,
)
from resbench.search.config import SearchConfig, SearchResult
from resbench.search.local import REUSABLE, finish, reusable_record
from resbench.search.lock import driver_lock
from resbench.search.optuna_study import (
    TrialSampler,
    counts,
    describe_best,
    discard_interrupted,
    make_sampler,
    open_study,
    storage,
)
from resbench.search.progress import Progress
from resbench.search.ray_attach import ray_session
from resbench.store import CurveRow, RayInfo, TrialRecord, canonical_json
from resbench.train.datacache import DataCache

RUNNER = "ray"
TUNE_NAME = "tune"
SNAPSHOT_S = 1.0  # seconds between Tune's snapshots of the experiment state
# The data sets of this Ray worker process: Tune runs trial after trial in one worker process
# when it reuses actors, so they are kept between its trials, at most DATA_SETS_PER_WORKER of
# them, and go with the process. (The driver's callbacks keep their own, see RecordWriter.)
WORKER_DATA = DataCache(max_entries=DATA_SETS_PER_WORKER)


# ----- the space, seen from Optuna inside Ray ------------------------------------------------

class DefineByRun:
    """Samples the space on Optuna's trial; the point rides along in the Tune config."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config

    def __call__(self, ot_trial: Any) -> dict[str, Any]:
        spec, recipe, params = self.config.space.sample(TrialSampler(ot_trial))
        params = json.loads(canonical_json(params))
        ot_trial.set_user_attr("params", params)
        return {"point": {"spec": spec, "recipe": recipe, "params": params,
                          "trial_number": ot_trial.number}}


def _searcher_class() -> type:
    """:class:`StoredOptunaSearch`, defined on first use so that ray is imported lazily."""
    from optuna.trial import TrialState
    from ray.tune.search.optuna import OptunaSearch

    from resbench._compat.optuna import stored_trial
    from resbench._compat.ray import is_told, mark_told, optuna_study, optuna_trial

    class StoredOptunaSearch(OptunaSearch):
        """OptunaSearch that records outcomes faithfully (see the module docstring)."""

        def __init__(self, config: SearchConfig) -> None:
            metrics = [o.name for o in config.objectives]
            modes = [o.mode for o in config.objectives]
            multi = len(metrics) > 1
            super().__init__(DefineByRun(config), metric=metrics if multi else metrics[0],
                             mode=modes if multi else modes[0], sampler=make_sampler(config),
                             study_name=config.study_name, storage=storage(config))
            self.objectives = config.objectives

        def suggest(self, trial_id: str) -> dict | None:
            point = super().suggest(trial_id)
            optuna_trial(self, trial_id).set_user_attr("tune_trial_id", trial_id)
            return point

        def _open_trial(self, trial_id: str) -> Any:
            """The trial's Optuna trial, unless it is unknown or already told.

            After a restore, Tune's snapshot can be older than the study: a trial that finished
            just before the driver died is run again (the trainable then finds its record and
            returns at once), and its Optuna trial is finished already.
            """
            ot_trial = optuna_trial(self, trial_id)
            if ot_trial is None or is_told(self, trial_id):
                return None
            if stored_trial(optuna_study(self), ot_trial).state.is_finished():
                mark_told(self, trial_id)
                return None
            return ot_trial

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            value = result.get(self.objectives[0].name)
            if isinstance(self.metric, list) or "epoch" not in result or value is None:
                return
            ot_trial = self._open_trial(trial_id)
            if ot_trial is not None:
                ot_trial.report(float(value), int(result["epoch"]))

        def on_trial_complete(self, trial_id: str, result: dict | None = None,
                              error: bool = False) -> None:
            ot_trial = self._open_trial(trial_id)
            if ot_trial is None:
                return
            result = result or {}
            status = result.get("status") if result.get("final") else "pruned"
            if error:
                status = "failed"
            ot_trial.set_user_attr("status", status)
            if result.get("key"):
                ot_trial.set_user_attr("key", result["key"])
            if result.get("cached"):
                ot_trial.set_user_attr("cached", True)
            values = [result.get(o.name) for o in self.objectives]
            study = optuna_study(self)
            if status in ("pruned", "infeasible"):
                study.tell(ot_trial, state=TrialState.PRUNED)
            elif status in ("failed", "diverged") or any(v is None for v in values):
                study.tell(ot_trial, state=TrialState.FAIL)
            else:
                study.tell(ot_trial, values if len(values) > 1 else values[0])
            mark_told(self, trial_id)

    return StoredOptunaSearch


# ----- the trainable -------------------------------------------------------------------------

def trainable(tune_config: dict[str, Any], config: SearchConfig) -> None:
    """One trial inside a Ray worker: check, dedupe, train from the last checkpoint, record."""
    with _log_level("ray.train", logging.WARNING):  # one line per checkpoint otherwise
        _trial_in_worker(tune_config, config)


@contextlib.contextmanager
def _log_level(name: str, level: int) -> Iterator[None]:
    """``name``'s logger at ``level`` during the block only (the worker process is reused)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


def _trial_in_worker(tune_config: dict[str, Any], config: SearchConfig) -> None:
    import ray
    from ray import tune

    from resbench.train.trial import CHECKPOINT, run_trial

    point = tune_config["point"]
    cand = make_candidate(config, point["spec"], point["recipe"], point["params"], WORKER_DATA)
    context = ray.get_runtime_context()
    where = RayInfo(node_id=context.get_node_id(), gpu_ids=[str(g) for g in ray.get_gpu_ids()],
                    started=time.time())
    info = search_info(RUNNER, config, point["trial_number"], point["params"],
                       worker=os.getpid(), ray=where)
    store = config.store

    def final(record: TrialRecord, cached: bool = False, write: bool = False) -> None:
        where.finished = time.time()
        if record.search is None:
            record.search = info
        if write:  # what is stored is what is reported, so the driver need not write it again
            store.write_record(record)
        tune.report({**{o.name: o.value(record) for o in config.objectives},
                     "status": record.status, "final": True, "cached": cached,
                     "key": cand.key, "record": canonical_json(record.to_json())})

    if not cand.feasible:
        record = untrained_record(config, cand, "infeasible", "; ".join(cand.violations), info)
        # never replace a result trained under looser limits
        return final(record, write=not store.has(cand.key))
    prior = reusable_record(store, cand.key)
    if prior is not None:
        return final(prior, cached=True)

    work = Path(tempfile.mkdtemp(prefix=f"resbench-{cand.key}-"))
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # a retry, a restored search or a migrated trial
        with checkpoint.as_directory() as d:
            if (Path(d) / CHECKPOINT).is_file():
                shutil.copy(Path(d) / CHECKPOINT, work / CHECKPOINT)
    curves: list[CurveRow] = []

    def reporter(epoch: int, row: dict[str, float]) -> bool:
        curves.append(CurveRow(**row))
        if epoch >= cand.recipe.epochs:
            return False  # the last epoch is reported with the final record
        where.finished = time.time()  # if the scheduler stops it here
        partial = untrained_record(config, cand, "pruned", f"stopped after epoch {epoch}", info,
                                   curves)
        # Every objective in every result (Tune checks): this epoch's value, the cost, or None.
        now = {o.name: row.get(o.per_epoch) if o.per_epoch else cand.cost.get(o.metric)
               for o in config.objectives}
        tune.report({**row, **now, "epoch": epoch, "final": False, "key": cand.key,
                     "record": canonical_json(partial.to_json())},
                    checkpoint=tune.Checkpoint.from_directory(work))
        return False

    try:
        record = run_trial(cand.spec, cand.recipe, cand.seed, data=cand.data, reporter=reporter,
                           checkpoint_dir=work, experiment=config.experiment,
                           store_dir=store.path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if record.status == "failed":
        # Let Tune retry it (FailureConfig.max_failures); RecordWriter records the last failure.
        raise RuntimeError(f"trial {cand.key} failed: {record.reason}")
    record.search = info
    final(record, write=True)


# ----- the driver ----------------------------------------------------------------------------

def _callback_class() -> type:
    from ray import tune

    class RecordWriter(tune.Callback):
        """Writes scheduler-stopped and failed trials' records, and keeps the progress line."""

        def __init__(self, config: SearchConfig, progress: Progress) -> None:
            self.config, self.progress = config, progress
            self.study = None
            self.data = DataCache(max_entries=1)  # for failed trials' records, while Tune runs

        def __getstate__(self) -> dict[str, Any]:
            # Tune saves its run config, callbacks too: not the study or loaded data.
            return {**self.__dict__, "study": None, "data": DataCache(max_entries=1)}

        def _update(self) -> None:
            if self.study is None:
                self.study = open_study(self.config, create=False)
            self.progress.update(counts(self.study), describe_best(self.study, self.config))

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._update()

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            result = trial.last_result or {}
            if result.get("record"):
                record = TrialRecord.from_json(json.loads(result["record"]))
                store = self.config.store
                if result.get("final"):
                    # A reused record is in the store already; an infeasible one never
                    # replaces a result trained under looser limits; on a shared file system
                    # the trainable has written this very record (not written twice).
                    if not result.get("cached") and not (
                            record.status == "infeasible" and store.has(record.key)) \
                            and not _holds(store, record):
                        store.write_record(record)
                elif not store.has(record.key, REUSABLE):
                    record.reason = (f"stopped by the {self.config.ray.scheduler} scheduler "
                                        f"after epoch {result.get('epoch')}")
                    store.write_record(record)
            self._update()

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            record = failed_record(self.config, trial, self.data)
            if not self.config.store.has(record.key, REUSABLE):  # never hide a result
                self.config.store.write_record(record)
            self._update()

    return RecordWriter


def _holds(store: Any, record: TrialRecord) -> bool:
    """Whether the store already holds exactly ``record`` (a read, cheaper than a durable write)."""
    if not store.record_path(record.key).is_file():
        return False
    try:
        return store.read_record(record.key).to_json() == record.to_json()
    except UserError:
        return False  # a corrupt file: the driver's copy replaces it


def failed_record(config: SearchConfig, trial: Any, cache: DataCache) -> TrialRecord:
    """The record of a trial that failed after all its retries, with the last error."""
    point = trial.config["point"]
    cand = make_candidate(config, point["spec"], point["recipe"], point["params"], cache)
    error = (_error_text(trial) or "unknown error").strip().splitlines()
    reason = next((line for line in reversed(error) if "Error" in line), error[-1])
    info = search_info(RUNNER, config, point["trial_number"], point["params"])
    last = trial.last_result or {}
    curves = TrialRecord.from_json(json.loads(last["record"])).curves if last.get("record") else []
    record = untrained_record(config, cand, "failed", reason.strip(), info, curves)
    record.attempts = trial.num_failures
    return record


def _error_text(trial: Any) -> str | None:
    """The trial's error log: the driver's local copy (written before callbacks run), else the
    one in storage (synced later)."""
    local = trial.error_file
    if local and Path(local).is_file():
        return Path(local).read_text()
    return trial.get_error()


def run_ray(config: SearchConfig) -> SearchResult:
    """Run, or with ``config.resume`` continue, the search on a Ray cluster (one driver per
    experiment at a time: a second, a ``--resume`` of a live search say, is refused)."""
    with driver_lock(config.path, config.experiment):
        return _run_ray(config)


def _run_ray(config: SearchConfig) -> SearchResult:
    from ray import tune

    from resbench._compat.ray import set_callbacks, sigint_raises, snapshot_period

    started = time.monotonic()
    exp_path = config.path / "ray" / TUNE_NAME
    exists = exp_path.exists() and tune.Tuner.can_restore(str(exp_path))
    if exists and not config.resume:
        raise UserError(f"experiment {config.experiment!r} already has a Ray search in "
                        f"{exp_path}; pass --resume to continue it, or choose another --experiment")
    if exists:
        planned = config.store.read_manifest().get("search", {}).get("trials")
        if planned is not None and planned != config.trials:
            raise UserError(f"the Ray search of {config.experiment!r} was started for {planned} "
                            f"trials and resumes with that budget; pass --trials {planned}")
    config.store.write_manifest(config.manifest())
    progress = Progress(config.experiment, config.trials, enabled=config.progress)
    with ray_session(config.ray.address, _runtime_env(), num_cpus=config.ray.num_cpus,
                     num_gpus=config.ray.num_gpus) as attached:
        try:
            if not attached:
                _check_trial_fits(config)
            fn = tune.with_parameters(trainable, config=config)
            resources = {"cpu": config.ray.cpus_per_trial, "gpu": config.ray.gpus_per_trial}
            fn = tune.with_resources(fn, resources)
            callbacks = [_callback_class()(config, progress)]
            if exists:
                tuner = tune.Tuner.restore(str(exp_path), fn, resume_unfinished=True,
                                           resume_errored=False, restart_errored=False)
                set_callbacks(tuner, callbacks)  # the saved run config holds the old driver's
            else:
                tuner = _new_tuner(config, fn, callbacks)
            # Snapshot Tune's experiment state (small) every second, so that a killed driver's
            # resume loses little; every checkpoint a snapshot may name is kept until the end.
            # Ctrl-C raises KeyboardInterrupt out of fit() (Tune would otherwise end the run
            # quietly, as if finished): the driver stops as if killed, and --resume continues.
            with snapshot_period(SNAPSHOT_S), sigint_raises(), _interrupt_wins():
                tuner.fit()
            _drop_checkpoints(exp_path)
        finally:
            progress.close()
    study = open_study(config, create=False)
    discard_interrupted(study, requeue=False)  # asked after Tune's last snapshot: lost
    return finish(config, study, time.monotonic() - started)


@contextlib.contextmanager
def _interrupt_wins() -> Iterator[None]:
    """Ctrl-C ends ``fit()`` as an interruption whatever the KeyboardInterrupt broke on its way
    out: raised inside Optuna's journal lock (in the searcher's ``suggest``), it can surface
    from Tune as another error (a lock file already gone). While this is active, SIGINT raises
    KeyboardInterrupt as Python's default handler does, and is remembered."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set in the main thread
        return
    seen: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except Exception:
        if seen:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _new_tuner(config: SearchConfig, fn: Any, callbacks: list) -> Any:
    from ray import tune

    open_study(config)  # create it with the objectives' directions before the searcher loads it
    searcher = _searcher_class()(config)
    tune_config = tune.TuneConfig(
        search_alg=searcher, scheduler=_scheduler(config), num_samples=config.trials,
        max_concurrent_trials=config.ray.max_concurrent, reuse_actors=config.ray.reuse_actors,
        trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=TUNE_NAME, storage_path=str(config.path / "ray"), verbose=0,
        failure_config=tune.FailureConfig(max_failures=config.retries),
        callbacks=callbacks)
    return tune.Tuner(fn, tune_config=tune_config, run_config=run_config)


def _drop_checkpoints(exp_path: Path) -> None:
    """Free the trials' epoch checkpoints once the whole search has ended, all but the one
    Ray's ``ExperimentAnalysis(...).best_checkpoint`` names (so that it is not dangling).

    They are all kept while it runs: Tune's last snapshot may name any of them, and with
    ``CheckpointConfig(num_to_keep=k)`` a driver killed between deleting an old checkpoint and
    writing the next snapshot leaves a trial that can never be restored.
    """
    best = experiment_analysis(exp_path).best_checkpoint
    keep = Path(best.path).resolve() if best is not None else None
    for checkpoint in exp_path.glob("trial_*/checkpoint_*"):
        if checkpoint.resolve() != keep:
            shutil.rmtree(checkpoint, ignore_errors=True)


def experiment_analysis(path: str | Path) -> Any:
    """Ray's ``ExperimentAnalysis`` of a Ray search, its default metric and mode the search's
    first objective. ``path`` is the experiment folder (``results/<experiment>``) or its Tune
    folder (``.../ray/tune``), relative or absolute (Ray's own class takes absolute paths only)."""
    from ray.tune import ExperimentAnalysis

    from resbench.search.objectives import OBJECTIVES

    path = Path(path).resolve()
    if (path / "ray" / TUNE_NAME).is_dir():
        path = path / "ray" / TUNE_NAME
    manifest = path.parents[1] / "manifest.json"
    names = json.loads(manifest.read_text()).get("search", {}).get("objectives") \
        if manifest.is_file() else None
    objective = OBJECTIVES[names[0]] if names else OBJECTIVES["val_acc"]
    if not path.is_dir():
        raise UserError(f"{path}: not a Ray search (no ray/{TUNE_NAME} folder)")
    return ExperimentAnalysis(str(path), default_metric=objective.name,
                              default_mode=objective.mode)


def trial_dirname(trial: Any) -> str:
    """Short trial folders (Tune's default name spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def _scheduler(config: SearchConfig) -> Any:
    """ASHA over epochs (``hyperband``: ASHA with three brackets); none for several objectives."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    objective = config.objectives[0]
    if config.multi_objective or config.ray.scheduler == "none" or objective.per_epoch is None:
        return FIFOScheduler()
    max_t = max(2, _max_epochs(config))
    return ASHAScheduler(time_attr="epoch", metric=objective.name, mode=objective.mode,
                         max_t=max_t, grace_period=1, reduction_factor=2 if max_t < 9 else 3,
                         brackets=3 if config.ray.scheduler == "hyperband" else 1)


def _max_epochs(config: SearchConfig) -> int:
    """The most epochs any point of the space trains (the top of an epochs range)."""
    if "epochs" in config.recipe_overrides:
        return int(config.recipe_overrides["epochs"])
    for dist in config.space.dists:
        if dist.loc == ("recipe", "epochs"):
            return int(max(dist.candidates()))
    from resbench.spec.recipe import parse_recipe

    return parse_recipe(config.space.first_point()[1], file=config.space.file).epochs


def _check_trial_fits(config: SearchConfig) -> None:
    """A local cluster never grows: refuse a per-trial request it can never grant, which Ray
    would otherwise wait on forever (e.g. ``--gpus-per-trial`` on a machine without GPUs)."""
    import ray

    have = ray.cluster_resources()
    for kind, want in (("CPU", config.ray.cpus_per_trial), ("GPU", config.ray.gpus_per_trial)):
        if want > have.get(kind, 0.0):
            flag = f"--{kind.lower()}s-per-trial"
            raise UserError(f"each trial asks for {want:g} {kind} ({flag}), but the local Ray "
                            f"cluster has {have.get(kind, 0.0):g}; lower {flag}, or attach to a "
                            "cluster that has them with --address")


def _runtime_env() -> dict[str, Any]:
    """Workers import resbench from the same checkout as the driver when it is not installed."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


__all__ = ["run_ray", "trainable", "DefineByRun", "experiment_analysis", "failed_record"]
