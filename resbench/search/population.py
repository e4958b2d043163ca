"""Complexity-band populations (pycls's way of comparing design spaces, Radosavovic et al. 2019):
draw architectures uniformly from a search space, keep those whose cost lies in a band, and
write them as a suite, so that error distributions (EDFs) compare design choices at equal cost.

``sample_population(space, n, macs=Band(...))`` draws with :class:`resbench.spec.space.
UniformSampler` until ``n`` distinct architectures fall in the band (or ``max_draws`` are
spent), costing each with :func:`resbench.compile.cost` at the spec's input size (or
``input_size``); ``write_suite(population, folder)`` writes ``folder/suite.yaml`` and one spec
file per model under ``folder/specs/``. The suite file's ``population`` entry (space, seed,
bands, draws) travels into the experiment's manifest, where the report reads the band.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from resbench.errors import SpecError, UserError
from resbench.spec import Spec, parse_spec
from resbench.spec.space import Space, UniformSampler

SUFFIXES = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9}
_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMG]?)\s*")
DRAWS_PER_MODEL = 200  # default max_draws = n x this


def parse_count(text: str, *, flag: str) -> int:
    """``"20M"`` → 20_000_000; also ``1.5G``, ``300k``, ``2e7``, ``40000``."""
    match = _NUMBER.fullmatch(text)
    if not match:
        raise UserError(f"{flag}: {text!r} is not a count; write a number with an optional "
                        "suffix k, M or G (e.g. 20M, 1.5G, 300k)")
    value = float(match.group(1)) * SUFFIXES[match.group(2)]
    if not math.isfinite(value):
        raise UserError(f"{flag}: {text!r} is not a finite count")
    return round(value)


@dataclass(frozen=True)
class Band:
    """An inclusive range ``lo <= value <= hi`` of a cost (MACs or parameters)."""

    lo: int
    hi: int

    @classmethod
    def parse(cls, text: str, *, flag: str) -> Band:
        """``"20M:40M"``; refuses ``"abc"``, ``"20M"`` (no colon) and ``"40M:20M"``."""
        parts = text.split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise UserError(f"{flag}: {text!r} is not a band; write LO:HI, e.g. 20M:40M")
        lo, hi = (parse_count(p, flag=flag) for p in parts)
        if lo > hi:
            raise UserError(f"{flag}: the band {text!r} is empty: its low end {lo:,} is above "
                            f"its high end {hi:,}; write LO:HI with LO <= HI")
        return cls(lo, hi)

    def __contains__(self, value: int) -> bool:
        return self.lo <= value <= self.hi

    def label(self) -> str:
        """``20M:40M``."""
        return f"{_short(self.lo)}:{_short(self.hi)}"


def _short(value: int) -> str:
    """``20000000`` → ``20M``, ``1500`` → ``1.5k``; exact, else the plain number."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        text = f"{value / scale:.6g}"
        if value >= scale and round(float(text) * scale) == value:
            return text + suffix
    return str(value)


def _readable(value: int) -> str:
    """``9109984`` → ``9.11M`` (three significant digits, for messages)."""
    for suffix, scale in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


@dataclass(frozen=True)
class Member:
    """One kept architecture: its spec (as a dict and validated), sampled recipe and values."""

    spec_data: dict[str, Any]
    spec: Spec
    recipe: dict[str, Any]
    params: dict[str, Any]
    cost: dict[str, int]


@dataclass
class Population:
    """The kept members and what it took to find them."""

    space: Space
    members: list[Member] = field(default_factory=list)
    drawn: int = 0
    duplicates: int = 0
    outside: int = 0
    seed: int = 0
    n: int = 0
    macs: Band | None = None
    params: Band | None = None
    input_size: int | None = None
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # cost -> (min, max) drawn

    def info(self, space_file: str | None = None) -> dict[str, Any]:
        """The suite's (and so the manifest's) ``population`` entry."""
        return {
            "space": space_file or self.space.file, "seed": self.seed, "n": self.n,
            "drawn": self.drawn, "kept": len(self.members), "duplicates": self.duplicates,
            "macs": [self.macs.lo, self.macs.hi] if self.macs else None,
            "params": [self.params.lo, self.params.hi] if self.params else None,
            "input_size": self.input_size,
        }

    def default_name(self) -> str:
        """``cifar_resnets-macs20M-40M`` (a valid experiment name)."""
        bands = "".join(f"-{name}{band.label().replace(':', '-')}" for name, band in
                        (("macs", self.macs), ("params", self.params)) if band)
        return f"{self.space.name}{bands}"

    def summary(self) -> str:
        bands = ", ".join(f"{name} {band.label()}" for name, band in
                          (("MACs", self.macs), ("params", self.params)) if band) or "no band"
        return (f"drew {self.drawn} candidate(s) from {self.space.name}, kept "
                f"{len(self.members)} of the {self.n} asked for in the band ({bands}); "
                f"{self.outside} outside it, {self.duplicates} repeated")


def sample_population(space: Space, n: int, *, macs: Band | None = None,
                      params: Band | None = None, seed: int = 0, max_draws: int | None = None,
                      input_size: int | None = None) -> Population:
    """Draw uniformly from ``space`` until ``n`` distinct points (architecture by ``Spec.key``,
    and recipe) lie in every given band, or ``max_draws`` (default ``n * DRAWS_PER_MODEL``) are
    drawn. Costs are at ``input_size`` (default: each spec's own). A sampled point the spec
    language refuses is an error in the space, as in a search."""
    from resbench.compile import cost

    if n < 1:
        raise UserError(f"a population needs n >= 1 models, got {n}")
    limit = max_draws if max_draws is not None else n * DRAWS_PER_MODEL
    sampler = UniformSampler(seed)
    pop = Population(space, seed=seed, n=n, macs=macs, params=params, input_size=input_size)
    keys: set[str] = set()
    while len(pop.members) < n and pop.drawn < limit:
        spec_data, recipe, values = space.sample(sampler)
        pop.drawn += 1
        spec = _parse_point(space, spec_data, values)
        c = cost(spec, input_size=input_size)
        measured = {"macs": int(c.macs), "params": int(c.params)}
        for name, value in measured.items():
            lo, hi = pop.seen.get(name, (value, value))
            pop.seen[name] = (min(lo, value), max(hi, value))
        if any(band is not None and measured[name] not in band
               for name, band in (("macs", macs), ("params", params))):
            pop.outside += 1
            continue
        key = spec.key() + json.dumps(recipe, sort_keys=True)  # another drawn recipe: another trial
        if key in keys:
            pop.duplicates += 1
            continue
        keys.add(key)
        pop.members.append(Member(spec_data, spec, recipe, dict(values), measured))
    if not pop.members:
        ranges = "; ".join(f"{name} {_readable(lo)} to {_readable(hi)}"
                           for name, (lo, hi) in sorted(pop.seen.items()))
        raise UserError(f"no candidate of {space.file or space.name} lies in the band after "
                        f"{pop.drawn} draws (the draws ranged over {ranges}); widen the band, "
                        "change the space, or raise --max-draws")
    return pop


def _parse_point(space: Space, spec_data: Mapping[str, Any], values: Mapping[str, Any]) -> Spec:
    try:
        return parse_spec(dict(spec_data), file=space.file)
    except SpecError as exc:
        raise SpecError(f"a sampled point is invalid (the space allows a combination the spec "
                        f"language refuses; narrow the space or add a $when): {exc.message}; "
                        f"sampled {dict(values)}", file=space.file, path=exc.path, value=exc.value,
                        allowed=exc.allowed) from None


SUITE_FILE = "suite.yaml"


def write_suite(pop: Population, folder: str | Path, *, name: str | None = None) -> Path:
    """``folder/suite.yaml`` naming ``folder/specs/<space>-NNNN.yaml``, one per member (each
    with its sampled recipe as the spec's ``recipe:``). A folder that already holds this very
    suite is left as it is (so a rerun resumes); one holding another suite is refused."""
    folder = Path(folder)
    suite_file = folder / SUITE_FILE
    texts: dict[Path, str] = {}
    for i, member in enumerate(pop.members):
        spec_name = f"{pop.space.name}-{i:04d}"
        data = {**member.spec_data, "name": spec_name,
                "description": f"sampled from {pop.space.name} (seed {pop.seed}): "
                               + ", ".join(f"{k}={v}" for k, v in member.params.items())}
        if member.recipe:
            data["recipe"] = member.recipe
        texts[folder / "specs" / f"{spec_name}.yaml"] = yaml.safe_dump(data, sort_keys=False)
    suite = {"name": name or pop.default_name(),
             "description": f"{pop.summary()} (resbench sample)",
             "specs": [path.relative_to(folder).as_posix() for path in texts],
             "population": pop.info(str(Path(pop.space.file).resolve()) if pop.space.file
                                    else None)}
    texts[suite_file] = yaml.safe_dump(suite, sort_keys=False)
    if suite_file.exists():
        if all(path.is_file() and path.read_text() == text for path, text in texts.items()):
            return suite_file
        raise UserError(f"{suite_file} already holds another suite; choose another --out "
                        "folder (or --experiment) or remove it")
    (folder / "specs").mkdir(parents=True, exist_ok=True)
    for path, text in texts.items():
        path.write_text(text)
    return suite_file
