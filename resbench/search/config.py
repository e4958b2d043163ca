"""What a search needs to run, whichever runner runs it, and what it returns."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resbench.errors import UserError, unknown
from resbench.search.objectives import Objective
from resbench.spec.space import PRUNERS, SAMPLERS, Space
from resbench.store import Store, experiment_dir

SCHEDULERS = ("asha", "hyperband", "none")
SQLITE_FILE = "study.db"  # the study of experiments made before the journal became the default
JOURNAL_FILE = "study.journal"  # the default study: Optuna's journal, safe for parallel workers


def default_sampler(objectives: tuple[Objective, ...] | tuple[str, ...]) -> str:
    """The sampler when neither the space's ``search:`` section nor a flag names one: TPE for
    one objective, NSGA-II for several (TPE's single-objective history cannot rank a front)."""
    return "nsga2" if len(objectives) > 1 else "tpe"


def default_pruner(objectives: tuple[Objective, ...] | tuple[str, ...]) -> str:
    """The pruner when neither the space nor a flag names one: median for one objective, none
    for several (Optuna cannot prune multi-objective trials)."""
    return "none" if len(objectives) > 1 else "median"


def derived_seed(seed: int | None, worker: int, existing: int) -> int | None:
    """The sampler seed of worker ``worker`` starting on a study that holds ``existing`` trials.

    A fresh single-worker search uses ``seed`` itself; another worker, or a resumed search, gets
    a seed derived from all three, so that it does not replay the points the seed drew before
    (or draws beside it), and the same run repeated derives the same seeds."""
    if seed is None or (worker == 0 and existing == 0):
        return seed
    digest = hashlib.sha256(f"resbench-sampler:{seed}:{worker}:{existing}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class RayOptions:
    """How trials are placed on a Ray cluster."""

    address: str | None = None  # None: start a local cluster in-process
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU (0.5: two trials per GPU)
    scheduler: str = "asha"
    reuse_actors: bool = True
    max_concurrent: int | None = None
    num_cpus: int | None = None  # for the in-process cluster only
    num_gpus: int | None = None  # for the in-process cluster only (declared, e.g. for tests)


@dataclass(frozen=True)
class SearchConfig:
    """One search: the space, the objectives, the budget, and how it runs."""

    space: Space
    experiment: str
    objectives: tuple[Objective, ...]
    trials: int
    runner: str = "local"
    sampler: str | None = None  # None: default_sampler(objectives)
    pruner: str | None = None  # None: default_pruner(objectives)
    sampler_seed: int | None = None
    seed: int | None = None  # training seed of every trial (default: the recipe's first seed)
    max_params: int | None = None
    max_macs: int | None = None
    results_root: Path = Path("results")
    storage: str | None = None  # an Optuna RDB URL or a journal file (default: see storage_url)
    workers: int = 1  # local runner: processes sharing the study
    retries: int = 1  # extra attempts for a trial that fails (exception, out of memory)
    resume: bool = False
    join: bool = False  # local runner: add workers to a study others are running (shared RDB)
    progress: bool = True
    ray: RayOptions = field(default_factory=RayOptions)
    # The top recipe layer of every trial (--epochs, --set), over the sampled recipe.
    recipe_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Absolute, so Ray workers (whose working directory differs) write to the same folder.
        object.__setattr__(self, "results_root", Path(self.results_root).resolve())
        if self.sampler is None:
            object.__setattr__(self, "sampler", default_sampler(self.objectives))
        if self.pruner is None:
            object.__setattr__(self, "pruner", default_pruner(self.objectives))
        for kind, value, allowed in (("sampler", self.sampler, SAMPLERS),
                                     ("pruner", self.pruner, PRUNERS),
                                     ("scheduler", self.ray.scheduler, SCHEDULERS)):
            if value not in allowed:
                raise unknown(kind, value, allowed)
        if self.trials < 1 or self.workers < 1 or self.retries < 0:
            raise UserError("trials and workers must be >= 1 and retries >= 0")
        if len(self.objectives) > 1 and self.pruner != "none":
            raise UserError(f"pruner {self.pruner!r} cannot be used with several objectives "
                            f"({', '.join(o.name for o in self.objectives)}): Optuna prunes "
                            "single-objective studies only; drop the pruner (--pruner none, or "
                            "no search.pruner) or keep one objective")
        if self.sampler == "grid":
            self.space.grid()  # refuses continuous ranges with a located error
        experiment_dir(self.experiment, self.results_root)  # refuses names escaping results/

    @classmethod
    def from_space(cls, space: Space, **overrides: Any) -> SearchConfig:
        """A config with the space's ``search:`` defaults; keyword arguments override them."""
        from resbench.search.objectives import parse_objectives
        from resbench.spec.space import split_objectives

        s = space.settings
        objectives = overrides.pop("objectives", None) or s.objectives
        if isinstance(objectives, str):
            objectives = split_objectives(objectives, path="objectives")
        if not all(isinstance(o, Objective) for o in objectives):
            objectives = parse_objectives(tuple(objectives), file=space.file,
                                          path="search.objectives")
        fields: dict[str, Any] = {
            "experiment": s.experiment or space.name, "trials": s.trials, "sampler": s.sampler,
            "pruner": s.pruner, "sampler_seed": s.sampler_seed, "seed": s.seed,
            "max_params": s.max_params, "max_macs": s.max_macs}
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
        fields.update(overrides)
        return cls(space=space, objectives=objectives, **fields)

    @property
    def path(self) -> Path:
        return experiment_dir(self.experiment, self.results_root)

    @property
    def store(self) -> Store:
        return Store(self.path)

    @property
    def study_name(self) -> str:
        return self.experiment

    @property
    def storage_url(self) -> str:
        """Where the study lives: ``storage`` if given (an RDB URL, or a journal file path);
        else the experiment's ``study.db`` where an earlier version made one (so it resumes);
        else its ``study.journal``, Optuna's journal file storage, which parallel workers share
        without SQLite's "database is locked" failures."""
        if self.storage:
            return self.storage
        db = self.path / SQLITE_FILE
        if db.is_file():
            return f"sqlite:///{db}"
        return str(self.path / JOURNAL_FILE)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def pruning_metric(self) -> str | None:
        """The per-epoch curve column pruning reads: only for a single per-epoch objective."""
        if self.multi_objective or self.pruner == "none":
            return None
        return self.objectives[0].per_epoch

    def manifest(self) -> dict[str, Any]:
        """The experiment's manifest entries for this search."""
        return {"kind": "search", "space_file": self.space.file, "space": self.space.template,
                "search": {"runner": self.runner, "objectives": [o.name for o in self.objectives],
                           "trials": self.trials, "sampler": self.sampler, "pruner": self.pruner,
                           "max_params": self.max_params, "max_macs": self.max_macs,
                           "seed": self.seed, "sampler_seed": self.sampler_seed,
                           "study": self.study_name, "storage": self.storage,
                           **({"recipe_overrides": self.recipe_overrides}
                              if self.recipe_overrides else {})}}


@dataclass
class SearchResult:
    """Counts by outcome and the best trials (the Pareto front for several objectives)."""

    experiment: str
    path: Path
    counts: dict[str, int]
    best: list[dict[str, Any]]
    seconds: float = 0.0
