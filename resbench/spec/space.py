"""Search spaces: a spec file in which any field may be a distribution instead of a value.

A distribution is a mapping with one ``$``-key::

    block: {$choice: [basic, bottleneck]}
    stages: [{depth: {$int: [1, 9], step: 2}, width: 16, stride: 1}, ...]
    stem: {kind: cifar, width: {$int: [8, 64], log: true}}
    recipe: {optimizer: {lr: {$float: [1.0e-3, 0.3], log: true}}}
    groups: {$choice: [1, 2, 4], $when: {block: bottleneck}}   # omitted unless the block is one

Parameter names are the field paths (``stages[1].depth``, ``recipe.optimizer.lr``). A top-level
``search:`` section holds the defaults of a search (objectives, cost constraints, sampler,
pruner, number of trials). The space is validated when it is loaded, with the same located
:class:`SpecError` as a spec. No torch and no optuna here: sampling goes through the tiny
:class:`Sampler` protocol, whose Optuna adapter lives in ``resbench.search``.
"""
from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from resbench.errors import SpecError, join_path, shown
from resbench.errors import unknown as unknown_name
from resbench.spec.load import BASE_KEY, field_info, format_path, load_raw, parse_spec
from resbench.spec.recipe import parse_recipe, recipe_defaults
from resbench.spec.schema import STAGE_DEFAULTS, Spec

__all__ = ["Dist", "FixedSampler", "Sampler", "SearchSettings", "Space", "UniformSampler",
           "load_space", "parse_space", "SAMPLERS", "PRUNERS"]

DIST_KEYS = ("$choice", "$int", "$float")
OPTIONS = {"$choice": (), "$int": ("step", "log"), "$float": ("step", "log")}
WHEN = "$when"
FIXED_FIELDS = ("name", "description", BASE_KEY, "search")  # never a distribution
SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("median", "hyperband", "sha", "none")
SEARCH_KEYS = ("objectives", "constraints", "sampler", "pruner", "trials", "seed",
               "sampler_seed", "experiment")
CONSTRAINT_KEYS = ("max_params", "max_macs")
Loc = tuple[str | int, ...]


class Sampler(Protocol):
    """Picks one value per distribution; ``name`` is the field path (the Optuna parameter name)."""

    def choice(self, name: str, values: Sequence[Any]) -> Any: ...

    def int(self, name: str, lo: int, hi: int, step: int, log: bool) -> int: ...

    def float(self, name: str, lo: float, hi: float, step: float | None, log: bool) -> float: ...


@dataclass(frozen=True)
class Dist:
    """One distribution in a space, at field path ``name`` (``loc`` is the same path as a tuple)."""

    name: str
    loc: Loc
    kind: Literal["choice", "int", "float"]
    values: tuple[Any, ...] = ()
    lo: float = 0
    hi: float = 0
    step: float | None = None
    log: bool = False
    when: tuple[tuple[Loc, tuple[Any, ...]], ...] = ()

    def draw(self, sampler: Sampler) -> Any:
        if self.kind == "choice":
            return sampler.choice(self.name, self.values)
        if self.kind == "int":
            return sampler.int(self.name, int(self.lo), int(self.hi), int(self.step or 1), self.log)
        return sampler.float(self.name, float(self.lo), float(self.hi), self.step, self.log)

    def candidates(self) -> list[Any]:
        """Values that validation tries: every choice, or both bounds of a range."""
        return list(self.values) if self.kind == "choice" else [self.lo, self.hi]

    def grid_values(self) -> list[Any] | None:
        """Every value, when the distribution is finite (a choice or a linear int range)."""
        if self.kind == "choice":
            return list(self.values)
        if self.kind == "int" and not self.log:
            return list(range(int(self.lo), int(self.hi) + 1, int(self.step or 1)))
        return None


@dataclass(frozen=True)
class SearchSettings:
    """The ``search:`` section: defaults that command-line flags override."""

    objectives: tuple[str, ...] = ("val_acc",)
    max_params: int | None = None
    max_macs: int | None = None
    sampler: str | None = None  # None: resbench.search.config.default_sampler(objectives)
    pruner: str | None = None  # None: resbench.search.config.default_pruner(objectives)
    trials: int = 20
    seed: int | None = None  # training seed of every trial (default: the recipe's first seed)
    sampler_seed: int | None = None
    experiment: str | None = None  # default: the space file's stem


@dataclass(frozen=True)
class Space:
    """A validated search space: a template with distributions, and the search defaults."""

    template: dict[str, Any]
    dists: tuple[Dist, ...]
    settings: SearchSettings = field(default_factory=SearchSettings)
    file: str | None = None

    @property
    def name(self) -> str:
        return str(self.template.get("name") or (Path(self.file).stem if self.file else "space"))

    def sample(self, sampler: Sampler) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """One point: ``(spec_dict, recipe_dict, params)``; unmet ``$when`` fields are omitted."""
        return _Resolver(self, sampler).run()

    def first_point(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The point of first choices and lower bounds (what validation starts from)."""
        return self.sample(_FirstSampler())

    def grid(self) -> dict[str, list[Any]]:
        """Every parameter's values, for a grid sampler; refused if a range is continuous."""
        out: dict[str, list[Any]] = {}
        for dist in self.dists:
            values = dist.grid_values()
            if values is None:
                raise SpecError("a grid search needs every distribution to be a $choice or a "
                                "linear $int range", file=self.file, path=dist.name,
                                value=f"${dist.kind}" + (" (log)" if dist.log else ""))
            out[dist.name] = values
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())


class FixedSampler:
    """Replays known parameter values (e.g. a finished trial's ``params``); a missing one is an error."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)

    def _get(self, name: str) -> Any:
        if name not in self.params:
            raise KeyError(f"no value for search parameter {name!r}")
        return self.params[name]

    def choice(self, name: str, values: Sequence[Any]) -> Any:
        return self._get(name)

    def int(self, name: str, lo: int, hi: int, step: int, log: bool) -> int:
        return int(self._get(name))

    def float(self, name: str, lo: float, hi: float, step: float | None, log: bool) -> float:
        return float(self._get(name))


class _FirstSampler:
    """The first choice, the lower bound: the reference point used to validate a space."""

    def __init__(self, override: tuple[str, Any] | None = None) -> None:
        self.override = override

    def _pick(self, name: str, default: Any) -> Any:
        return self.override[1] if self.override and self.override[0] == name else default

    def choice(self, name: str, values: Sequence[Any]) -> Any:
        return self._pick(name, values[0])

    def int(self, name: str, lo: int, hi: int, step: int, log: bool) -> int:
        return self._pick(name, lo)

    def float(self, name: str, lo: float, hi: float, step: float | None, log: bool) -> float:
        return self._pick(name, lo)


class UniformSampler:
    """Independent uniform draws from a seeded ``random.Random``, for sampling a design space as
    pycls does: a choice uniformly, an int uniformly over its steps, a float uniformly; with
    ``log``, uniformly in log space (an int range widened by half a step each side and rounded,
    as Optuna's ``RandomSampler`` does)."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def choice(self, name: str, values: Sequence[Any]) -> Any:
        return values[self.rng.randrange(len(values))]

    def int(self, name: str, lo: int, hi: int, step: int, log: bool) -> int:
        if not log:
            return lo + step * self.rng.randrange((hi - lo) // step + 1)
        value = round(math.exp(self.rng.uniform(math.log(lo - 0.5), math.log(hi + 0.5))))
        return min(max(value, lo), hi)

    def float(self, name: str, lo: float, hi: float, step: float | None, log: bool) -> float:
        if step is not None:
            return lo + step * self.rng.randrange(round((hi - lo) / step) + 1)  # step | hi - lo
        if log:
            return math.exp(self.rng.uniform(math.log(lo), math.log(hi)))
        return self.rng.uniform(lo, hi)


# ----- loading and validation ----------------------------------------------------------------

def load_space(path: str | Path) -> Space:
    """Load a space file (``_base_`` resolved like a spec's) and validate it."""
    return parse_space(load_raw(path), file=path)


def parse_space(data: Mapping[str, Any], file: str | Path | None = None) -> Space:
    """Validate a space mapping: its distributions, its ``search:`` section, and every value."""
    file = str(file) if file is not None else None
    data = copy.deepcopy(dict(data))
    settings = _parse_settings(data.pop("search", None) or {}, file)
    for key in FIXED_FIELDS:
        if key in data and _is_dist(data[key]):
            raise SpecError(f"{key} cannot be a distribution", file=file, path=key)
    dists = tuple(_collect(data, (), file))
    names = {d.loc for d in dists}
    for dist in dists:
        for loc, _ in dist.when:
            if loc == dist.loc:
                raise SpecError("a field's $when cannot depend on the field itself", file=file,
                                path=join_path(dist.name, WHEN))
    space = Space(template=data, dists=dists, settings=settings, file=file)
    _check_order(space, names)
    _validate_values(space)
    return space


def _is_dist(value: Any) -> bool:
    return isinstance(value, dict) and any(isinstance(k, str) and k.startswith("$") for k in value)


def _collect(node: Any, loc: Loc, file: str | None) -> Iterator[Dist]:
    """Every distribution under ``node``, depth first, in document order."""
    if _is_dist(node):
        yield _parse_dist(node, loc, file)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _collect(value, (*loc, key), file)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _collect(value, (*loc, i), file)


def _parse_dist(node: dict[str, Any], loc: Loc, file: str | None) -> Dist:
    name = format_path(loc)
    keys = [k for k in node if k in DIST_KEYS]
    extra_keys = [k for k in node if str(k).startswith("$") and k not in (*DIST_KEYS, WHEN)]
    if extra_keys:
        raise unknown_name("distribution key", extra_keys[0], [*DIST_KEYS, WHEN], file=file,
                           path=name)
    if len(keys) != 1:
        raise SpecError("a distribution needs exactly one of $choice, $int, $float"
                        + (f", got {len(keys)}" if keys else ""), file=file, path=name,
                        allowed=DIST_KEYS)
    key = keys[0]
    extra = [k for k in node if k not in (key, WHEN, *OPTIONS[key])]
    if extra:
        raise unknown_name("option", extra[0], [*OPTIONS[key], WHEN], file=file, path=name,
                           detail=f" for {key}")
    when = _parse_when(node.get(WHEN), name, file)
    arg = node[key]
    if key == "$choice":
        if not isinstance(arg, list) or not arg:
            raise SpecError("$choice needs a non-empty list of values", file=file, path=name,
                            value=arg)
        return Dist(name, loc, "choice", values=tuple(arg), when=when)
    return _parse_range(key, arg, node, loc, name, when, file)


def _parse_range(key: str, arg: Any, node: dict[str, Any], loc: Loc, name: str,
                 when: tuple[tuple[Loc, tuple[Any, ...]], ...], file: str | None) -> Dist:
    is_int = key == "$int"
    number = (int,) if is_int else (int, float)
    if (not isinstance(arg, list) or len(arg) != 2
            or not all(isinstance(b, number) and not isinstance(b, bool) for b in arg)):
        kind = "integers" if is_int else "numbers"
        raise SpecError(f"{key} needs [lo, hi], two {kind}", file=file, path=name, value=arg)
    lo, hi = arg
    if not all(math.isfinite(b) for b in arg):
        raise SpecError(f"{key} needs finite bounds", file=file, path=name, value=arg)
    if lo > hi:
        raise SpecError(f"{key} has lo > hi", file=file, path=name, value=arg)
    log = node.get("log", False)
    if not isinstance(log, bool):
        raise SpecError("log must be true or false", file=file, path=join_path(name, "log"),
                        value=log)
    step = node.get("step")
    if step is not None:
        if (not isinstance(step, number) or isinstance(step, bool) or not math.isfinite(step)
                or step <= 0):
            raise SpecError(f"step must be a positive {'integer' if is_int else 'number'}",
                            file=file, path=join_path(name, "step"), value=step)
        if log and (step != 1 or not is_int):  # Optuna: only an integer log range has a step (1)
            raise SpecError("a log-scale range cannot have a step", file=file,
                            path=join_path(name, "step"), value=step)
        span = (hi - lo) / step
        if abs(span - round(span)) > 1e-9:
            raise SpecError(f"step {step} does not divide hi - lo = {hi - lo}", file=file,
                            path=join_path(name, "step"), value=step)
    if log and lo <= 0:
        raise SpecError("a log-scale range needs lo > 0", file=file, path=name, value=arg)
    step = (int(step) if step is not None else 1) if is_int else step
    return Dist(name, loc, "int" if is_int else "float", lo=lo, hi=hi, step=step,
                log=log, when=when)


_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def parse_path(text: str) -> Loc:
    """``"stages[0].block"`` → ``("stages", 0, "block")``; raises ValueError if malformed."""
    loc: list[str | int] = []
    for part in text.split("."):
        match = _PATH_PART.fullmatch(part)
        if not match:
            raise ValueError(text)
        loc.append(match.group(1))
        loc.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(2)))
    return tuple(loc)


def _parse_when(when: Any, name: str, file: str | None) -> tuple[tuple[Loc, tuple[Any, ...]], ...]:
    if when is None:
        return ()
    where = join_path(name, WHEN)
    if not isinstance(when, dict) or not when:
        raise SpecError("$when needs a mapping of field paths to values, e.g. "
                        "{block: bottleneck}", file=file, path=where, value=when)
    out = []
    for key, value in when.items():
        try:
            loc = parse_path(str(key))
        except ValueError:
            raise SpecError("not a field path (e.g. shortcut or stages[0].block)", file=file,
                            path=where, value=key) from None
        values = tuple(value) if isinstance(value, list) else (value,)
        if not values:
            raise SpecError("an empty list of values can never match", file=file,
                            path=join_path(where, str(key)), value=value)
        _check_condition(loc, values, join_path(where, str(key)), file)
        out.append((loc, values))
    return tuple(out)


def _check_condition(loc: Loc, values: tuple[Any, ...], where: str, file: str | None) -> None:
    """A condition on no field, or on a value its field can never take, would silently never
    hold (a typo would drop the conditional field from every sample)."""
    exists, allowed = field_info(loc)
    if not exists:
        raise SpecError("$when names no field of a spec or recipe", file=file, path=where,
                        value=format_path(loc))
    for value in values:
        if allowed is not None and value not in allowed:
            raise unknown_name("$when value", value, allowed, file=file, path=where,
                               detail=", which can never match")


def _parse_settings(raw: Any, file: str | None) -> SearchSettings:
    """The ``search:`` section, checked field by field (objective names are checked by the runner)."""
    if not isinstance(raw, dict):
        raise SpecError("search must be a mapping", file=file, path="search", value=raw)
    for key in raw:
        if key not in SEARCH_KEYS and key != "objective":
            raise unknown_name("field", key, SEARCH_KEYS, file=file, path=f"search.{key}")
    if _any_dist(raw):
        raise SpecError("the search section cannot contain distributions", file=file,
                        path="search")
    out: dict[str, Any] = {}
    objectives = raw.get("objectives", raw.get("objective"))
    if objectives is not None:
        out["objectives"] = split_objectives(objectives, file=file, path="search.objectives")
    constraints = raw.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise SpecError("constraints must be a mapping", file=file, path="search.constraints",
                        allowed=CONSTRAINT_KEYS)
    for key, value in constraints.items():
        path = f"search.constraints.{key}"
        if key not in CONSTRAINT_KEYS:
            raise unknown_name("constraint", key, CONSTRAINT_KEYS, file=file, path=path)
        out[key] = positive_int(value, file=file, path=path)
    for key, allowed in (("sampler", SAMPLERS), ("pruner", PRUNERS)):
        if key in raw:
            if raw[key] not in allowed:
                raise unknown_name(key, raw[key], allowed, file=file, path=f"search.{key}")
            out[key] = raw[key]
    if "trials" in raw:
        out["trials"] = positive_int(raw["trials"], file=file, path="search.trials")
    for key in ("seed", "sampler_seed"):
        if key in raw and raw[key] is not None:
            if (not isinstance(raw[key], int) or isinstance(raw[key], bool)
                    or not 0 <= raw[key] < 2**32):
                raise SpecError(f"{key} must be an integer in [0, 2^32)", file=file,
                                path=f"search.{key}", value=raw[key])
            out[key] = raw[key]
    if raw.get("experiment") is not None:
        if (not isinstance(raw["experiment"], str) or not raw["experiment"].strip()
                or len(raw["experiment"]) > 200):
            raise SpecError("experiment must be a name", file=file, path="search.experiment",
                            value=raw["experiment"])
        out["experiment"] = raw["experiment"]
    return SearchSettings(**out)


def _any_dist(node: Any) -> bool:
    if _is_dist(node):
        return True
    if isinstance(node, dict):
        return any(_any_dist(v) for v in node.values())
    if isinstance(node, list):
        return any(_any_dist(v) for v in node)
    return False


def split_objectives(value: Any, *, file: str | None = None, path: str = "objectives"
                     ) -> tuple[str, ...]:
    """``"val_acc,macs"`` or ``[val_acc, macs]`` → ``("val_acc", "macs")`` (names checked later)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise SpecError("objectives must be a name or a list of names", file=file, path=path,
                        value=value)
    names = tuple(i.strip() for i in items if i.strip())
    if not names or len(set(names)) != len(names):
        raise SpecError("objectives must be distinct names, at least one", file=file, path=path,
                        value=value)
    return names


def positive_int(value: Any, *, file: str | None = None, path: str = "") -> int:
    """An integer > 0; ``1.5e6`` or ``"2e5"`` (YAML 1.1 reads that as text) when it is whole."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SpecError(f"must be a positive integer, got {shown(value)}", file=file, path=path,
                        value=value)
    return value


def _check_order(space: Space, names: set[Loc]) -> None:
    """Refuse ``$when`` cycles (a needs b needs a): sampling must have an order."""
    state: dict[Loc, int] = {}

    def visit(dist: Dist) -> None:
        if state.get(dist.loc) == 2:
            return
        if state.get(dist.loc) == 1:
            raise SpecError("$when conditions form a cycle", file=space.file,
                            path=join_path(dist.name, WHEN))
        state[dist.loc] = 1
        for loc, _ in dist.when:
            for dep in _dependencies(space, loc):
                visit(dep)
        state[dist.loc] = 2

    for dist in space.dists:
        visit(dist)


def _dependencies(space: Space, loc: Loc) -> list[Dist]:
    """Distributions whose value decides the field at ``loc`` (itself, a parent, a child, or the
    top-level default of a stage field)."""
    targets = [loc]
    if len(loc) == 3 and loc[0] == "stages" and loc[2] in STAGE_DEFAULTS:
        targets.append((loc[2],))
    out = []
    for dist in space.dists:
        for t in targets:
            n = min(len(t), len(dist.loc))
            if dist.loc[:n] == t[:n]:
                out.append(dist)
                break
    return out


def _validate_values(space: Space) -> None:
    """Every choice value and range bound must make a valid spec and recipe.

    Each is substituted into a reference point (the first choice and the lower bound of every
    other distribution, with the field's own ``$when`` made true where it names a distribution),
    and the result is validated like any spec.
    """
    reference = _FirstSampler()
    spec, recipe, _ = space.sample(reference)
    try:
        _validate_point(spec, recipe, space.file)
    except SpecError as exc:
        culprit = next((d for d in space.dists if d.name == exc.path), None)
        if culprit is not None:
            value = culprit.candidates()[0]
            raise SpecError(f"value {shown(value)} makes an invalid spec: {exc.message}",
                            file=space.file, path=culprit.name, value=value,
                            allowed=exc.allowed) from None
        raise SpecError(f"the space's first point (first choices, lower bounds) is invalid: "
                        f"{exc.message}", file=space.file, path=exc.path, value=exc.value,
                        allowed=exc.allowed) from None
    for dist in space.dists:
        for value in dist.candidates():
            sampler = _FirstSampler((dist.name, value))
            spec, recipe, params = _Resolver(space, sampler, force=dist).run()
            try:
                _validate_point(spec, recipe, space.file)
            except SpecError as exc:
                raise SpecError(f"value {shown(value)} makes an invalid spec: {exc.message} "
                                f"(at {exc.path or 'top level'})", file=space.file,
                                path=dist.name, value=value, allowed=exc.allowed) from None


def _validate_point(spec: dict[str, Any], recipe: dict[str, Any], file: str | None) -> None:
    parse_spec(spec, file=file)
    parse_recipe(recipe, file=file, path="recipe")


# ----- sampling ------------------------------------------------------------------------------

class _Resolver:
    """Resolves a space's distributions in dependency order into a concrete spec and recipe."""

    def __init__(self, space: Space, sampler: Sampler, force: Dist | None = None) -> None:
        self.space, self.sampler, self.force = space, sampler, force
        self.data = copy.deepcopy(space.template)
        self.values: dict[Loc, Any] = {}
        self.params: dict[str, Any] = {}
        self.dropped: set[Loc] = set()

    def run(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if self.force is not None:
            self._make_true(self.force)
        for dist in self.space.dists:
            self._resolve(dist)
        for loc in sorted(self.dropped, key=lambda loc: [str(p) for p in loc], reverse=True):
            _delete(self.data, loc)
        recipe = self.data.pop("recipe", None) or {}
        return self.data, recipe, self.params

    def _make_true(self, dist: Dist) -> None:
        """For validation: set the conditions of ``dist`` that name a distribution to a match."""
        for loc, values in dist.when:
            for dep in self.space.dists:
                if dep.loc == loc and dep.kind == "choice" and values[0] in dep.values:
                    self.values[dep.loc] = values[0]
                    _put(self.data, dep.loc, values[0])
                    self.params[dep.name] = values[0]

    def _resolve(self, dist: Dist) -> None:
        if dist.loc in self.values or dist.loc in self.dropped:
            return
        self.values[dist.loc] = None  # in progress (cycles were refused at load time)
        for loc, _ in dist.when:
            for dep in _dependencies(self.space, loc):
                if dep is not dist:
                    self._resolve(dep)
        if all(self._field(loc) in values for loc, values in dist.when):
            value = dist.draw(self.sampler)
            self.values[dist.loc] = value
            self.params[dist.name] = value
            _put(self.data, dist.loc, copy.deepcopy(value))
        else:
            del self.values[dist.loc]
            self.dropped.add(dist.loc)

    def _field(self, loc: Loc) -> Any:
        """The value of the field at ``loc`` in the point so far, or its schema default."""
        if any(loc[:len(d)] == d for d in self.dropped):
            return self._default(loc)
        node: Any = self.data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return self._default(loc)
        return node

    def _default(self, loc: Loc) -> Any:
        if len(loc) == 3 and loc[0] == "stages" and loc[2] in STAGE_DEFAULTS:
            return self._field((loc[2],))
        if len(loc) == 1 and isinstance(loc[0], str) and loc[0] in Spec.model_fields:
            return Spec.model_fields[loc[0]].default
        if loc[0] == "recipe":
            node: Any = recipe_defaults()
            for part in loc[1:]:
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
            return node
        return None


def _put(data: Any, loc: Loc, value: Any) -> None:
    node = data
    for part in loc[:-1]:
        node = node[part]
    node[loc[-1]] = value


def _delete(data: Any, loc: Loc) -> None:
    node = data
    for part in loc[:-1]:
        node = node[part]
    if isinstance(node, dict):
        node.pop(loc[-1], None)
    else:  # a whole list item cannot be omitted: it falls back to null
        node[loc[-1]] = None
