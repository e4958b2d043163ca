"""Optuna pieces both runners share: the space adapter, samplers, pruners, the study and counts."""
from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resbench.errors import UserError
from resbench.search.config import SearchConfig, derived_seed

if TYPE_CHECKING:
    import optuna

_PRIMITIVE = (type(None), bool, int, float, str)
DISCARDED = "discarded"  # user attr: a trial that does not count (interrupted, or over budget)


def _primitive(values: Sequence[Any]) -> bool:
    """Whether Optuna can store ``values`` as categorical choices themselves (not by index)."""
    return all(isinstance(v, _PRIMITIVE) for v in values) and len({repr(v) for v in values}) == len(values)


class TrialSampler:
    """The space's Sampler protocol over an Optuna trial (parameter names are field paths).

    A choice among values Optuna cannot store (lists, mappings) is suggested by index.
    """

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def choice(self, name: str, values: Sequence[Any]) -> Any:
        if _primitive(values):
            return self.trial.suggest_categorical(name, list(values))
        return values[self.trial.suggest_categorical(name, list(range(len(values))))]

    def int(self, name: str, lo: int, hi: int, step: int, log: bool) -> int:
        return self.trial.suggest_int(name, lo, hi, step=step, log=log)

    def float(self, name: str, lo: float, hi: float, step: float | None, log: bool) -> float:
        return self.trial.suggest_float(name, lo, hi, step=step, log=log)


def optuna_grid(config: SearchConfig) -> dict[str, list[Any]]:
    """The grid in Optuna's terms (non-primitive choices by index, like :class:`TrialSampler`)."""
    grid = config.space.grid()
    return {name: values if _primitive(values) else list(range(len(values)))
            for name, values in grid.items()}


def make_sampler(config: SearchConfig, *, worker: int = 0,
                 existing: int = 0) -> optuna.samplers.BaseSampler:
    """The config's sampler, for worker ``worker`` of a study holding ``existing`` trials (its
    seed is derived from those, so workers and resumed runs do not replay points)."""
    import optuna

    seed = derived_seed(config.sampler_seed, worker, existing)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "grid":
        from resbench.search._grid import AskTellGridSampler

        return AskTellGridSampler(optuna_grid(config), seed=seed)
    if config.sampler == "nsga2":
        population = max(4, min(50, config.trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if config.sampler != "tpe":  # SearchConfig resolved and checked it (default_sampler)
        raise ValueError(f"no Optuna sampler for {config.sampler!r}")
    # Parallel workers: the constant liar keeps TPE from proposing what is already running.
    parallel = config.workers > 1 or config.runner == "ray"
    return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel,
                                      n_startup_trials=min(10, max(2, config.trials // 4)))


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    import optuna

    if config.pruning_metric is None:
        return optuna.pruners.NopPruner()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, config.trials // 5)),
                                           n_warmup_steps=1)
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto",
                                              reduction_factor=3)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)


def storage(config: SearchConfig) -> optuna.storages.BaseStorage:
    """The study's storage (``config.storage_url``): a journal file, or an RDB URL (SQLite waits
    for locks rather than failing at once under parallel workers). One that cannot be read is a
    UserError saying how to recover."""
    from sqlalchemy.exc import DatabaseError

    url = config.storage_url
    try:
        return open_storage(url)
    except DatabaseError as e:  # a damaged or foreign file ("file is not a database")
        raise UserError(_unreadable_study(config, e)) from None
    except ValueError as e:  # a journal whose lines are not Optuna's JSON log
        if "://" in url:
            raise
        raise UserError(_unreadable_study(config, e)) from None


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (``sqlite:///...``, ``postgresql://...``: RDB) or a path
    (a journal file, created on first use; it appends one line per change under a file lock,
    so processes on one machine, or on a file system with working links, share it)."""
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def _unreadable_study(config: SearchConfig, error: Exception) -> str:
    """What to do about a study storage that cannot be read: remove it; records are reused."""
    cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:200]
    if config.storage:
        return (f"cannot open the study storage {config.storage}: {cause}; repair it or use "
                "another --storage (finished trials' records are reused, not trained again)")
    url = config.storage_url
    path = Path(url.removeprefix("sqlite:///")) if "://" not in url or url.startswith(
        "sqlite:///") else config.path / "study.db"
    return (f"{path}: the Optuna study is unreadable ({cause}); to recover, remove it "
            f"(rm {path}) and run the search again: the trials recorded in "
            f"{config.path / 'trials'} are reused, not trained again")


def open_study(config: SearchConfig, *, sampler: Any = None, create: bool = True) -> optuna.Study:
    """Create or load the experiment's study (its name is the experiment's). Its sampler is
    ``sampler``, or the config's for a first worker (see :func:`make_sampler`)."""
    import optuna

    from resbench._compat.optuna import quiet

    kwargs: dict[str, Any] = {"storage": storage(config), "study_name": config.study_name,
                              "sampler": sampler or make_sampler(config),
                              "pruner": make_pruner(config)}
    with quiet():
        if not create:
            return optuna.load_study(**kwargs)
        study = optuna.create_study(load_if_exists=True,
                                    directions=[o.direction for o in config.objectives], **kwargs)
    _check_objectives(study, config)
    return study


def _check_objectives(study: optuna.Study, config: SearchConfig) -> None:
    """An existing study keeps its objectives: Optuna would silently keep the stored
    directions, so a rerun with other objectives would optimise the wrong way."""
    names = [o.name for o in config.objectives]
    stored = study.user_attrs.get("objectives")
    if stored is None:
        study.set_user_attr("objectives", names)
        from optuna.exceptions import ExperimentalWarning

        with warnings.catch_warnings():  # experimental in optuna 3.2+, stable in use
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(names)  # optuna-dashboard and `optuna trials` show val_acc
    elif stored != names:
        raise UserError(f"the study of experiment {config.experiment!r} optimises "
                        f"{', '.join(stored)}, not {', '.join(names)}; pass the same --objective, "
                        "or choose another --experiment")


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards the budget, in order of creation."""
    return [t for t in study.get_trials(deepcopy=False) if DISCARDED not in t.user_attrs]


def discard_interrupted(study: optuna.Study, *, requeue: bool) -> list[int]:
    """Trials a killed driver left RUNNING, for both runners: each is marked discarded
    (``interrupted``) and failed, so it does not count; with ``requeue`` its point is queued
    again (the local runner: the trial's epoch checkpoint, kept under its trial key, lets the
    requeued trial continue where the killed one stopped). The Ray runner does not requeue:
    Tune restarts the trials its snapshot knew, and any other is lost with the driver.

    Assumes no other worker is still running trials of this study. Returns their numbers.
    """
    from optuna.trial import TrialState

    from resbench._compat.optuna import fail_trial

    interrupted = [t for t in counted(study) if t.state == TrialState.RUNNING]
    for t in interrupted:
        fail_trial(study, t, {DISCARDED: "interrupted"})
        if requeue:
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
    return [t.number for t in interrupted]


def counts(study: optuna.Study) -> Counter[str]:
    """Trials by outcome: completed, pruned, infeasible, diverged, failed, running, cached."""
    from optuna.trial import TrialState

    out: Counter[str] = Counter()
    for t in counted(study):
        status = t.user_attrs.get("status")
        if t.state == TrialState.RUNNING:
            out["running"] += 1
        elif t.state == TrialState.WAITING:
            out["waiting"] += 1
        elif t.state == TrialState.FAIL:
            out["diverged" if status == "diverged" else "failed"] += 1
        elif t.state == TrialState.PRUNED:
            out["infeasible" if status == "infeasible" else "pruned"] += 1
        else:
            out["completed"] += 1
        if t.user_attrs.get("cached"):
            out["cached"] += 1
    out["done"] = sum(out[k] for k in ("completed", "pruned", "infeasible", "diverged", "failed"))
    return out


def running_epochs(study: optuna.Study) -> dict[int, int]:
    """Each running trial's last finished epoch (its ``epoch`` user attribute), by number."""
    from optuna.trial import TrialState

    return {t.number: t.user_attrs["epoch"] for t in study.get_trials(
        deepcopy=False, states=(TrialState.RUNNING,)) if "epoch" in t.user_attrs}


def best(study: optuna.Study, config: SearchConfig) -> list[dict[str, Any]]:
    """The best trial (or the Pareto front): number, values, params, record key."""
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    trials = study.best_trials if config.multi_objective else [study.best_trial]
    seen: set[Any] = set()  # a point reused from the store appears once, as its first trial
    trials = [t for t in sorted(trials, key=lambda t: t.number)
              if (k := t.user_attrs.get("key", t.number)) not in seen and not seen.add(k)]
    return [{"trial_number": t.number, "values": dict(zip((o.name for o in config.objectives),
                                                          t.values)),
             "params": t.user_attrs.get("params", t.params), "key": t.user_attrs.get("key")}
            for t in trials]


def describe_best(study: optuna.Study, config: SearchConfig) -> str:
    """``best val_acc 0.9431 (#12)`` or ``pareto front: 4 trials``."""
    found = best(study, config)
    if not found:
        return "best: none yet"
    if config.multi_objective:
        return f"pareto front: {len(found)} trial{'s' if len(found) != 1 else ''}"
    (name, value), = found[0]["values"].items()
    return f"best {name} {value:.4g} (#{found[0]['trial_number']})"
