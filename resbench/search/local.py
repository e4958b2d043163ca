"""The local runner: an Optuna study in the experiment's journal file (``study.journal``; an
older experiment's ``study.db``; or any RDB URL), run by one or more worker processes on this
machine that share it through its storage. One driver runs an experiment at a time
(``search/lock.py``).

Each Optuna trial samples the space, checks the cost constraints (an infeasible point is written
as an ``infeasible`` record and told to Optuna as *pruned*, so TPE learns to avoid the region
without a fake objective value), reuses a stored record of the same trial key instead of training
again, and otherwise calls ``run_trial`` with a reporter that feeds Optuna's pruner.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from typing import Any

from resbench.errors import UserError
from resbench.search import objectives as obj
from resbench.search.candidate import (
    DATA_SETS_PER_WORKER,
    Candidate,
    make_candidate,
    search_info,
    untrained_record,
)
from resbench.search.config import SearchConfig, SearchResult
from resbench.search.lock import driver_lock, worker_lock
from resbench.search.optuna_study import (
    DISCARDED,
    TrialSampler,
    best,
    counted,
    counts,
    describe_best,
    discard_interrupted,
    make_sampler,
    open_study,
    running_epochs,
)
from resbench.search.progress import Progress
from resbench.store import SearchInfo, Store, TrialRecord, canonical_json
from resbench.train.datacache import DataCache

RUNNER = "optuna"
REUSABLE = ("completed", "diverged", "pruned")  # a stored record of these is not trained again


def run_local(config: SearchConfig) -> SearchResult:
    """Run or resume the search until ``config.trials`` trials have finished (``join``: add
    workers to a search another driver runs, without its driver lock)."""
    started = time.monotonic()
    lock = contextlib.nullcontext() if config.join else driver_lock(config.path, config.experiment)
    with lock:
        study = prepare_study(config)
        existing = len(counted(study))  # seeds the workers' samplers (make_sampler)
        progress = Progress(config.experiment, config.trials, enabled=config.progress)
        try:
            if config.workers == 1:
                with progress.watching(lambda: (counts(study), describe_best(study, config),
                                                running_epochs(study))):
                    worker(config, study=study, existing=existing,
                           on_done=lambda s: progress.update(counts(s),
                                                             describe_best(s, config)))
            else:
                _run_workers(config, study, progress, existing)
        finally:
            progress.close()
        return finish(config, study, time.monotonic() - started)


def prepare_study(config: SearchConfig) -> Any:
    """Open the study, write the manifest, and on ``--resume`` requeue interrupted trials.

    A refused run (a study exists without --resume, or its objectives differ) leaves the
    experiment's manifest as it was."""
    config.store.path.mkdir(parents=True, exist_ok=True)
    study = open_study(config)
    existing = counted(study)
    if existing and not (config.resume or config.join):
        raise UserError(f"experiment {config.experiment!r} already has a study with "
                        f"{len(existing)} trials ({config.storage_url}); pass --resume to "
                        "continue it (--join to add workers to a search still running "
                        "elsewhere), or choose another --experiment")
    config.store.write_manifest(config.manifest())
    if config.resume:
        discard_interrupted(study, requeue=True)
    return study


def finish(config: SearchConfig, study: Any, seconds: float) -> SearchResult:
    """Counts and best trials, also written to ``search_summary.json`` in the experiment folder."""
    result = SearchResult(experiment=config.experiment, path=config.path,
                          counts=dict(counts(study)), best=best(study, config), seconds=seconds)
    summary = {"experiment": result.experiment, "runner": config.runner,
               "objectives": [o.name for o in config.objectives], "counts": result.counts,
               "best" if not config.multi_objective else "pareto_front": result.best,
               "seconds": round(seconds, 3)}
    (config.path / "search_summary.json").write_text(canonical_json(summary) + "\n")
    return result


# ----- one worker --------------------------------------------------------------------------

def worker(config: SearchConfig, on_done: Any = None, *, index: int = 0, existing: int = 0,
           study: Any = None) -> None:
    """Ask, evaluate and tell trials until the study holds the requested number of them.

    ``index`` is this worker's number among the run's and ``existing`` the trials the study
    held when the run started: they derive its sampler's seed (``make_sampler``), so workers
    and resumed runs with a fixed ``sampler_seed`` draw new points, not the same ones again.
    """
    with worker_lock(config.path):
        study = study if study is not None else open_study(config)
        study.sampler = make_sampler(config, worker=index, existing=existing)
        cache = DataCache(max_entries=DATA_SETS_PER_WORKER)  # this worker's, until it returns
        store = config.store
        while (trial := ask_within_budget(study, config.trials)) is not None:
            evaluate(config, study, trial, cache, store)
            if on_done is not None:
                on_done(study)


def ask_within_budget(study: Any, budget: int) -> Any:
    """A new trial, or None once ``budget`` trials exist (several workers may race: the loser's
    surplus trial is discarded, so the study ends with exactly ``budget``)."""
    from optuna.trial import TrialState

    trials = counted(study)
    if len(trials) >= budget and not any(t.state == TrialState.WAITING for t in trials):
        return None
    trial = study.ask()
    numbers = [t.number for t in counted(study)]
    if numbers.index(trial.number) >= budget:
        trial.set_user_attr(DISCARDED, "over budget")
        study.tell(trial, state=TrialState.FAIL)
        return None
    return trial


def evaluate(config: SearchConfig, study: Any, trial: Any, cache: DataCache, store: Store) -> None:
    """Sample, check, dedupe, train, record and tell one Optuna trial."""
    from optuna.trial import TrialState

    spec_dict, recipe_dict, params = config.space.sample(TrialSampler(trial))
    trial.set_user_attr("params", json.loads(canonical_json(params)))
    cand = make_candidate(config, spec_dict, recipe_dict, params, cache)
    trial.set_user_attr("key", cand.key)
    trial.set_user_attr("worker", os.getpid())
    info = search_info(RUNNER, config, trial.number, params, worker=os.getpid())
    if not cand.feasible:
        if not store.has(cand.key):  # the first trial to draw it keeps the record
            store.write_record(untrained_record(config, cand, "infeasible",
                                               "; ".join(cand.violations), info))
        trial.set_user_attr("status", "infeasible")
        study.tell(trial, state=TrialState.PRUNED)
        return
    prior = reusable_record(store, cand.key)
    if prior is not None:
        trial.set_user_attr("cached", True)
        tell(config, study, trial, prior)
        return
    record = train(config, cand, trial, info)
    store.write_record(record)
    tell(config, study, trial, record)


def reusable_record(store: Store, key: str) -> TrialRecord | None:
    """A stored record of the same trial that need not run again (failed ones run again);
    the file is read once."""
    if not store.record_path(key).is_file():
        return None
    record = store.read_record(key)
    return record if record.status in REUSABLE else None


def train(config: SearchConfig, cand: Candidate, trial: Any, info: SearchInfo) -> TrialRecord:
    """``run_trial`` with a pruning reporter, retried while it fails; its checkpoints are kept in
    ``checkpoints/<key>/`` until the trial ends, so an interrupted one resumes."""
    from resbench.train.trial import run_trial

    metric = config.pruning_metric

    def reporter(epoch: int, row: dict[str, float]) -> bool:
        trial.set_user_attr("epoch", epoch)  # for the progress line
        if metric is None or row.get(metric) is None:
            return False
        trial.report(float(row[metric]), epoch)
        return trial.should_prune()

    checkpoint_dir = config.store.inside(config.path / "checkpoints" / cand.key)  # no link out
    for attempt in range(1, config.retries + 2):
        record = run_trial(cand.spec, cand.recipe, cand.seed, reporter=reporter,
                           checkpoint_dir=checkpoint_dir, experiment=config.experiment,
                           data=cand.data, store_dir=config.path)
        if record.status != "failed":
            break
    record.search = info
    record.attempts = attempt
    if record.status == "pruned":  # run_trial knows a reporter stopped it, not which pruner
        record.reason = (f"pruned by Optuna's {config.pruner} pruner after epoch "
                         f"{len(record.curves)}")
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return record


def tell(config: SearchConfig, study: Any, trial: Any, record: TrialRecord) -> None:
    """Report a finished record to Optuna: pruned as pruned; failed, diverged (its accuracy is
    no result) or without objective values as failed."""
    from optuna.trial import TrialState

    status = record.status
    trial.set_user_attr("status", status)
    if status == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
        return
    values = obj.values(config.objectives, record)
    if status in ("failed", "diverged") or values is None:
        trial.set_user_attr("reason", str(record.reason))
        study.tell(trial, state=TrialState.FAIL)
        return
    study.tell(trial, values)


# ----- several workers ---------------------------------------------------------------------

def _worker_main(config: SearchConfig, threads: int, index: int, existing: int) -> None:
    """The entry point of one worker process: its share of the cores, then its trials."""
    from resbench._compat.optuna import quiet
    from resbench.train.threads import set_threads

    set_threads(threads)
    with quiet():
        worker(config, index=index, existing=existing)


def _run_workers(config: SearchConfig, study: Any, progress: Progress, existing: int) -> None:
    """``config.workers`` processes share the study; this one shows progress until they end."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    procs = [ctx.Process(target=_worker_main, args=(config, threads, index, existing),
                         daemon=False)
             for index in range(config.workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            progress.update(counts(study), describe_best(study, config), running_epochs(study))
            time.sleep(0.5)
    finally:
        for p in procs:
            p.join()
    progress.update(counts(study), describe_best(study, config))
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} of {config.workers} search workers failed "
                           f"(exit codes {bad}); see their output above")
