"""Suites: a named matrix of specs × seeds × recipe overrides, run into one results folder.

```yaml
name: degradation            # default: the file's stem; also the experiment's name
description: "..."
specs: [../cifar/plain*.yaml, ../cifar/resnet20.yaml]   # relative to this file; globs allowed
seeds: [0, 1]                # default: the recipe's seeds
recipe: {epochs: 10, ...}    # applied to every trial, over each spec's own recipe
overrides: [{}, {optimizer: {lr: 0.05}}]   # one column of the matrix each; default [{}]
```

Recipe precedence, lowest first: defaults < the spec's ``recipe:`` < the suite's ``recipe:`` <
one ``overrides`` entry < command-line flags. Trials are keyed by content, so a rerun skips
finished trials and resumes an interrupted one from its last epoch checkpoint.
"""
from __future__ import annotations

import glob
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from resbench.errors import SpecError, UserError
from resbench.spec import Spec, load_spec
from resbench.spec.load import parse_model, read_file
from resbench.spec.recipe import Recipe, locate_layer, merge_layers, parse_recipe
from resbench.store import TrialRecord



class SuiteFile(BaseModel):
    """The fields of a suite file, as written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    specs: tuple[str, ...] = Field(min_length=1)
    seeds: tuple[int, ...] | None = Field(None, min_length=1)
    recipe: dict[str, Any] = Field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = Field((dict(),), min_length=1)


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
                 overrides=tuple(locate_layer(o, path) for o in data.overrides))


def spec_as_suite(path: str | Path) -> Suite:
    """A single spec file run as a one-spec suite, named after the spec."""
    spec = load_spec(path)
    return Suite(name=spec.name, description=spec.description, file=None,
                 entries=(SuiteEntry(Path(path), spec),), seeds=None)


def load_target(path: str | Path) -> Suite:
    """A suite file, or a spec file as a one-spec suite."""
    return load_suite(path) if is_suite_file(path) else spec_as_suite(path)


def _expand(suite_file: Path, pattern: str, where: str) -> list[Path]:
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
    """What a run produced: every record of the matrix (new and earlier) and the counts."""

    experiment_dir: Path
    records: list[TrialRecord]
    ran: int
    skipped: int


def run_suite(suite: Suite, *, results_root: str | Path = "results", experiment: str | None = None,
              flags: Mapping[str, Any] | None = None, seeds: tuple[int, ...] | None = None,
              progress: str = "auto", retry_failed: bool = False) -> SuiteResult:
    """Run every unfinished trial of ``suite`` into ``results_root/<experiment>``.

    A failed or diverged trial is recorded and the suite goes on; a trial with a record is
    skipped (with ``retry_failed``, failed ones run again). ``progress`` is ``auto`` (bars on a
    terminal, log lines otherwise), ``bar``, ``log`` or ``none``.
    """
    from resbench.store import STATUSES, Store, SuiteInfo, experiment_dir
    from resbench.train.progress import make_progress
    from resbench.train.datacache import DataCache
    from resbench.train.trial import run_trial, trial_identity

    plans = suite.plans(flags, seeds)
    store = Store(experiment_dir(experiment or suite.name, results_root))
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
    bar = make_progress(progress, total=len(keyed), done=len(keyed) - len(todo))
    try:
        for plan, data, key, _ in todo:
            bar.trial_start(plan.label, plan.recipe.epochs)
            checkpoints = store.path / "checkpoints" / key
            record = run_trial(plan.spec, plan.recipe, plan.seed, data=data,
                               reporter=bar.epoch_end, checkpoint_dir=checkpoints,
                               experiment=store.name, store_dir=store.path)
            record.suite = SuiteInfo(name=suite.name, override=plan.override,
                                     spec_file=str(plan.spec_file))
            store.write_record(record)
            shutil.rmtree(checkpoints, ignore_errors=True)
            bar.trial_end(record)
    finally:
        bar.close()
    records = [store.read_record(key) for _, _, key, _ in keyed]
    return SuiteResult(store.path, records, ran=len(todo), skipped=len(keyed) - len(todo))


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
            "trials": [key for _, _, key, _ in keyed], "device": _device_name(devices)}


def _device_name(choices: list[str]) -> str:
    from resbench.train.loop import resolve_device

    try:
        return ",".join(sorted({str(resolve_device(c)) for c in choices}))
    except RuntimeError as e:
        raise UserError(str(e)) from None
