"""Suites: a named matrix of specs × seeds × recipe overrides, run into one results folder.

```yaml
name: degradation            # default: the file's stem; also the experiment's name
description: "..."
specs: [../cifar/plain*.yaml, ../cifar/resnet20.yaml]   # relative to this file; globs allowed
seeds: [0, 1]                # default: the recipe's seeds
recipe: {epochs: 10, ...}    # applied to every trial, over each spec's own recipe
overrides: [{}, {optimizer: {lr: 0.05}}]   # one column of the matrix each; default [{}]
population: {space: ..., seed: 0, macs: [lo, hi], ...}  # written by `resbench sample`; the
                             # manifest keeps it and the report's EDF section names the band
```

Recipe precedence, lowest first: defaults < the spec's ``recipe:`` < the suite's ``recipe:`` <
one ``overrides`` entry < command-line flags. Trials are keyed by content, so a rerun skips
finished trials and resumes an interrupted one from its last epoch checkpoint.
"""
from __future__ import annotations

import glob
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from resbench.errors import SpecError, UserError, check_path_text
from resbench.spec import Spec, load_spec
from resbench.spec.load import parse_model, read_file
from resbench.spec.recipe import Recipe, Seed, locate_layer, merge_layers, parse_recipe
from resbench.spec.schema import MAX_DESCRIPTION, MAX_NAME
from resbench.store import TrialRecord



class SuiteFile(BaseModel):
    """The fields of a suite file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", max_length=MAX_NAME)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    specs: tuple[str, ...] = Field(min_length=1)
    seeds: tuple[Seed, ...] | None = Field(None, min_length=1)
    recipe: dict[str, Any] = Field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = Field((dict(),), min_length=1)
    population: dict[str, Any] | None = Field(
        None, description="How `resbench sample` drew the specs (space, seed, MACs/params band).")


@dataclass(frozen=True)
class SuiteEntry:
    """One spec of a suite, with the file it came from."""

    path: Path
    spec: Spec


@dataclass(frozen=True)
class Suite:
    """A loaded, validated suite: every spec parsed and every recipe layer checked."""

    name: str
    description: str
    file: Path | None
    entries: tuple[SuiteEntry, ...]
    seeds: tuple[int, ...] | None
    recipe: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = ({},)
    population: dict[str, Any] | None = None  # set by `resbench sample` (space, seed, bands)

    def plans(self, flags: Mapping[str, Any] | None = None,
              seeds: tuple[int, ...] | None = None) -> list[TrialPlan]:
        """The trial matrix (seeds outermost, so a full comparison lands first); ``flags`` is
        the highest recipe layer and ``seeds`` replaces every other choice of seeds."""
        flags = dict(flags or {})
        if flags:
            parse_recipe(flags, path="flags")
        columns = []
        for entry in self.entries:
            for i, override in enumerate(self.overrides):
                layers = [locate_layer(entry.spec.recipe or {}, entry.path), self.recipe,
                          override, flags]
                where = f"overrides[{i}]" if len(self.overrides) > 1 else "recipe"
                file = self.file or entry.path
                recipe = parse_recipe(merge_layers(*layers, file=file, path=where), file=file,
                                      path=where)
                columns.append((entry, i, recipe))
        all_seeds = sorted({s for _, _, r in columns for s in (seeds or self.seeds or r.seeds)})
        return [TrialPlan(entry.spec, recipe, seed, i, entry.path)
                for seed in all_seeds for entry, i, recipe in columns
                if seed in (seeds or self.seeds or recipe.seeds)]


@dataclass(frozen=True)
class TrialPlan:
    """One cell of the matrix: a spec, its resolved recipe, a seed and the override's index."""

    spec: Spec
    recipe: Recipe
    seed: int
    override: int
    spec_file: Path

    @property
    def label(self) -> str:
        tag = f" override={self.override}" if self.override else ""
        return f"{self.spec.name} seed={self.seed}{tag}"


def is_suite_file(path: str | Path) -> bool:
    """A suite file has a top-level ``specs`` list; anything else is treated as a spec."""
    return "specs" in read_file(path)


def load_suite(path: str | Path) -> Suite:
    """Load and validate a suite file; errors name the file and the field path."""
    path = Path(path)
    raw = read_file(path)
    data = parse_model(SuiteFile, raw, file=path)
    parse_recipe(data.recipe, file=path, path="recipe")
    for i, override in enumerate(data.overrides):
        parse_recipe(override, file=path, path=f"overrides[{i}]")
    entries = []
    for i, pattern in enumerate(data.specs):
        for spec_path in _expand(path, pattern, f"specs[{i}]"):
            entries.append(SuiteEntry(spec_path, load_spec(spec_path)))
    names = [e.spec.name for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SpecError(f"spec names must be unique within a suite: {', '.join(twice)}",
                        file=path, path="specs")
    return Suite(name=data.name or path.stem, description=data.description, file=path,
                 entries=tuple(entries), seeds=data.seeds,
                 recipe=locate_layer(data.recipe, path),
                 overrides=tuple(locate_layer(o, path) for o in data.overrides),
                 population=data.population)


def spec_as_suite(path: str | Path) -> Suite:
    """A single spec file run as a one-spec suite, named after the spec."""
    spec = load_spec(path)
    return Suite(name=spec.name, description=spec.description, file=None,
                 entries=(SuiteEntry(Path(path), spec),), seeds=None)


def load_target(path: str | Path) -> Suite:
    """A suite file, or a spec file as a one-spec suite."""
    return load_suite(path) if is_suite_file(path) else spec_as_suite(path)


def _expand(suite_file: Path, pattern: str, where: str) -> list[Path]:
    check_path_text(pattern, what="a spec path", file=suite_file, path=where)
    base = suite_file.resolve().parent
    full = pattern if Path(pattern).is_absolute() else str(base / pattern)
    matches = sorted(Path(p) for p in glob.glob(full, recursive=True)) if glob.has_magic(pattern) \
        else [Path(full)] if Path(full).is_file() else []
    if not matches:
        raise SpecError("no spec file matches", file=suite_file, path=where, value=pattern)
    return matches


# running ----------------------------------------------------------------------------------------

@dataclass
class SuiteResult:
    """What a run produced: every record of the matrix (new and earlier) and the counts
    (``skipped``: finished before, or trained meanwhile by another process)."""

    experiment_dir: Path
    records: list[TrialRecord]
    ran: int
    skipped: int


KILLED = "killed, likely out of memory"
POLL_S = 1.0  # how often a process waiting for another's trials looks for their records


def run_suite(suite: Suite, *, results_root: str | Path = "results", experiment: str | None = None,
              flags: Mapping[str, Any] | None = None, seeds: tuple[int, ...] | None = None,
              progress: str = "auto", retry_failed: bool = False,
              max_attempts: int = 2) -> SuiteResult:
    """Run every unfinished trial of ``suite`` into ``results_root/<experiment>``.

    A failed or diverged trial is recorded and the suite goes on; a trial with a record is
    skipped (with ``retry_failed``, failed ones run again). Each trial is claimed before it
    trains (``resbench.store.Claims``), so several processes on the same folder train each
    trial once: a trial another live process holds is left to it, and its record is picked up
    when it appears. A trial whose earlier runs were killed (no record, a dead process's
    claim) ``max_attempts`` times is recorded failed ("killed, likely out of memory").
    ``progress`` is ``auto`` (bars on a terminal, log lines otherwise), ``bar``, ``log`` or
    ``none``.
    """
    from resbench.store import STATUSES, Claims, Store, experiment_dir
    from resbench.train.datacache import DataCache
    from resbench.train.progress import make_progress
    from resbench.train.trial import trial_identity

    plans = suite.plans(flags, seeds)
    store = Store(experiment_dir(experiment or suite.name, results_root))
    claims = Claims(store.path, max_attempts=max_attempts)
    cache = DataCache()  # every trial of the matrix holds its data until the suite ends
    keyed = []
    for plan in plans:
        data = cache.get(plan.recipe.data)
        adapted, key = trial_identity(plan.spec, plan.recipe, plan.seed, data)
        if all(key != k for _, _, k, _ in keyed):  # the same trial twice in a matrix runs once
            keyed.append((plan, data, key, adapted))
    store.write_manifest(_manifest(suite, keyed))
    redo = tuple(s for s in STATUSES if s != "failed") if retry_failed else STATUSES
    todo = [item for item in keyed if not store.has(item[2], redo)]
    seen = {item[2]: _finished_at(store, item[2]) for item in todo}
    bar = make_progress(progress, total=len(keyed), done=len(keyed) - len(todo))
    ran = 0
    waiting: set[str] = set()
    try:
        while todo:
            for item in list(todo):
                key = item[2]
                claim = claims.acquire(key)
                if claim.state == "busy":
                    if key not in waiting:
                        waiting.add(key)
                        _note(f"{item[0].label}: trained by {claim.owner.describe()}; "
                              "waiting for its record")
                    continue
                todo.remove(item)
                try:
                    # Checked once the claim is held: a process writes the record before it
                    # drops its claim, so a trial finished meanwhile is seen here.
                    if store.has(key, redo) or _finished_at(store, key) != seen[key]:
                        if key in waiting:  # another process recorded it
                            _note(f"{item[0].label}: {store.read_record(key).status} "
                                  "(recorded by the other process)")
                        continue
                    if claim.state == "exhausted":
                        bar.trial_start(item[0].label, 0)
                        record = _killed_record(item, store.name, claim.owner, suite.name)
                        store.write_record(record)
                    else:
                        ran += 1
                        record = _run_one(item, store, claim.owner.attempt, bar, suite.name)
                    bar.trial_end(record)
                finally:
                    claims.release(key)
            if todo:
                time.sleep(POLL_S)
    finally:
        bar.close()
    records = [store.read_record(key) for _, _, key, _ in keyed]
    return SuiteResult(store.path, records, ran=ran, skipped=len(keyed) - ran)


def _run_one(item: tuple, store: Any, attempt: int, bar: Any, suite_name: str) -> TrialRecord:
    """Train one claimed trial (resuming from its checkpoint) and store its record."""
    from resbench.store import SuiteInfo
    from resbench.train.trial import run_trial

    plan, data, key, _ = item
    bar.trial_start(plan.label, plan.recipe.epochs)
    checkpoints = store.inside(store.path / "checkpoints" / key)
    record = run_trial(plan.spec, plan.recipe, plan.seed, data=data, reporter=bar.epoch_end,
                       checkpoint_dir=checkpoints, experiment=store.name, store_dir=store.path)
    record.suite = SuiteInfo(name=suite_name, override=plan.override,
                             spec_file=str(plan.spec_file))
    if attempt > 1:
        record.attempts = attempt
    store.write_record(record)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return record


def _killed_record(item: tuple, experiment: str, owner: Any, suite_name: str) -> TrialRecord:
    """The record of a trial whose every allowed run was killed before it wrote one."""
    from resbench.store import Metrics, SuiteInfo, now_iso
    from resbench.train.trial import data_meta

    plan, data, key, adapted = item
    who = f", the last as {owner.describe()}" if owner.pid > 0 else ""
    return TrialRecord(
        key=key, experiment=experiment, spec_name=plan.spec.name, spec_key=adapted.key(),
        spec={**adapted.canonical(), "name": plan.spec.name}, summary=adapted.summary_fields(),
        recipe=plan.recipe.trial_dict(), seed=plan.seed, data=data_meta(data), status="failed",
        reason=f"{KILLED}: {owner.attempt} run(s) ended without a record{who} "
               "(rerun with --retry-failed to try again)",
        metrics=Metrics(epochs=0), attempts=owner.attempt,
        suite=SuiteInfo(name=suite_name, override=plan.override, spec_file=str(plan.spec_file)),
        started_at=owner.claimed_at or None, finished_at=now_iso())


def _finished_at(store: Any, key: str) -> str | None:
    """When the trial's record (if any) finished: a change means another process recorded it."""
    return store.read_record(key).finished_at if store.record_path(key).exists() else None


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _manifest(suite: Suite, keyed: list) -> dict[str, Any]:
    specs = {}
    for plan, _, _, adapted in keyed:
        specs.setdefault(plan.spec.name, {**adapted.canonical(), "name": plan.spec.name})
    recipes: list[dict[str, Any]] = []
    for plan, *_ in keyed:
        if plan.recipe.trial_dict() not in recipes:
            recipes.append(plan.recipe.trial_dict())
    devices = sorted({plan.recipe.device for plan, *_ in keyed})
    return {"kind": "suite", "suite": suite.name, "description": suite.description,
            "suite_file": str(suite.file) if suite.file else None, "specs": specs,
            "recipe": recipes[0] if len(recipes) == 1 else recipes,
            "seeds": sorted({plan.seed for plan, *_ in keyed}),
            "trials": [key for _, _, key, _ in keyed], "device": _device_name(devices),
            **({"population": suite.population} if suite.population else {})}


def _device_name(choices: list[str]) -> str:
    from resbench.train.loop import resolve_device

    try:
        return ",".join(sorted({str(resolve_device(c)) for c in choices}))
    except RuntimeError as e:
        raise UserError(str(e)) from None
