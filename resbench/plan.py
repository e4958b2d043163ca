"""The compile plan: a network as a list of :class:`Unit` s in forward order, which both
``ResNet.__init__`` (to build the modules) and ``cost()`` (to count them) walk.

A unit is a run of ``count`` consecutive modules that are built from the same *unit kind*: a
frozen, hashable dataclass of everything the module's construction depends on (its signature,
stochastic depth aside) and a ``build(drop_path)`` method returning the module(s). Equal kinds
build modules of equal shapes, so ``cost()`` measures each distinct kind once per input shape
(memoised) and multiplies by ``count``; a stage of depth 10^6 is two units (plus two per
per-block setting that differs). New block families (RegNet, DenseNet's dense layers and
transitions, the norm-free modes) are ``BlockUnit`` s too: their kind, block-kind options and
NF beta are fields of it; concatenating stages and NF nets are a unit per block, since each
block's input channels (or expected std) differ.

A unit belongs to a *part*: ``stem`` and ``head`` are flat (their modules are the network's own
children, under the names the kind gives them: ``conv1``, ``bn1``, ... ``fc``); ``layer{i}`` is
stacked (an ``nn.Sequential`` of the units' modules, numbered from 0, so blocks are
``layer{i}.{j}``). Module names and construction order are torchvision's, so its state_dicts
load strictly and seeded builds are reproducible.

Adding a unit kind (a new block family, a transition layer, another head):
  1. a frozen dataclass here with the fields its module depends on, ``out_channels`` (a field
     or property), ``stacked`` (True: numbered inside its stage; False: named children of the
     network), ``build(drop_path) -> nn.Module`` (stacked) or ``dict[str, nn.Module]`` (flat),
     building only from its fields, and ``costed()`` (itself, or itself with the fields that set
     only values at their defaults);
  2. the lines in :func:`plan` that emit it, grouping consecutive equal kinds into one unit.
Nothing else changes: the network and the cost walk every kind alike.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, Union

from torch import nn

from resbench.blocks import (
    ACTIVATIONS,
    BLOCKS,
    NORMS,
    SHORTCUTS,
    STEMS,
    BlockOptions,
    IncompatibleOptions,
    IncompatibleShapes,
)
from resbench.errors import SpecError
from resbench.spec import Spec, StageSpec
from resbench.spec.vocab import SHORTCUTS as VOCAB_SHORTCUTS

STEM, HEAD = "stem", "head"

Built = Union[nn.Module, dict[str, nn.Module]]


class UnitKind(Protocol):
    """What every unit kind offers (see the module docstring)."""

    stacked: ClassVar[bool]

    @property
    def out_channels(self) -> int: ...

    def build(self, drop_path: float = 0.0) -> Built: ...

    def costed(self) -> UnitKind:
        """The kind ``cost()`` measures in this one's place: equal but for settings that set
        only values (initial weights, constant factors), at their defaults, so that units
        differing only in those share one measurement."""


# Per shortcut kind, its options that set values only (vocab's Option.values_only) and their
# defaults. (Block-kind options have none: tests/compile/test_plan.py checks.)
VALUES_ONLY: dict[str, dict[str, Any]] = {
    kind: {name: o.default for name, o in info.options.items() if o.values_only}
    for kind, info in VOCAB_SHORTCUTS.items()}


@dataclass(frozen=True)
class StemUnit:
    """The layers before the first stage (``resbench.blocks.STEMS``)."""

    stacked: ClassVar[bool] = False
    kind: str
    in_channels: int
    width: int
    norm: str
    activation: str
    activate: bool  # norm + act after the conv(s); pre-activation nets leave them to the blocks
    widths: tuple[int, ...] | None = None  # one per conv, where the kind takes them (deep)

    @property
    def out_channels(self) -> int:
        return self.width

    def costed(self) -> StemUnit:
        return self

    def build(self, drop_path: float = 0.0) -> dict[str, nn.Module]:
        extra = {} if self.widths is None else {"widths": self.widths}
        stem = STEMS.get(self.kind)(
            self.in_channels, self.width, norm=NORMS.get(self.norm),
            act=ACTIVATIONS.get(self.activation), conv_bias=self.norm == "none",
            activate=self.activate, **extra)
        if stem.out_channels != self.width:
            raise RuntimeError(f"stem {self.kind!r} returned {stem.out_channels} channels, "
                               f"the plan expects {self.width}")
        return stem.modules


@dataclass(frozen=True)
class BlockUnit:
    """One residual block, ``BLOCKS[block](in_channels, width, stride, BlockOptions)``."""

    stacked: ClassVar[bool] = True
    block: str
    in_channels: int
    width: int
    stride: int
    shortcut: str
    norm: str
    activation: str
    groups: int
    width_per_group: int
    expansion: int
    se_ratio: float
    shortcut_options: tuple[tuple[str, Any], ...]  # the kind's, resolved, sorted by name
    block_options: tuple[tuple[str, Any], ...] = ()  # the block kind's, resolved, sorted
    normfree: str = "none"
    nf_alpha: float = 0.2
    nf_beta: float = 1.0  # expected std of the block's input (normfree: nf)

    @property
    def out_channels(self) -> int:
        branch = self.width * self.expansion
        return self.in_channels + branch if SHORTCUTS.get(self.shortcut).concatenates else branch

    def costed(self) -> BlockUnit:
        """This block with its shortcut's values-only options (``gate_bias``, ``scale``) and
        NF-ResNets' alpha and beta (constant factors) at their defaults."""
        values_only = VALUES_ONLY[self.shortcut]
        nf = self.normfree == "nf"
        if not values_only and not nf:
            return self
        options = tuple((name, values_only.get(name, value))
                        for name, value in self.shortcut_options)
        if not nf:
            return replace(self, shortcut_options=options)
        return replace(self, shortcut_options=options, nf_alpha=BlockUnit.nf_alpha,
                       nf_beta=BlockUnit.nf_beta)

    def build(self, drop_path: float = 0.0) -> nn.Module:
        opts = BlockOptions.of(
            shortcut=self.shortcut, norm=self.norm, activation=self.activation,
            groups=self.groups, width_per_group=self.width_per_group, expansion=self.expansion,
            se_ratio=self.se_ratio, drop_path=drop_path, block_options=dict(self.block_options),
            normfree=self.normfree, nf_alpha=self.nf_alpha, nf_beta=self.nf_beta,
            **dict(self.shortcut_options))
        block = BLOCKS.get(self.block)(self.in_channels, self.width, self.stride, opts)
        if block.out_channels != self.out_channels:
            raise RuntimeError(f"block {self.block!r} returned {block.out_channels} channels, "
                               f"the plan expects {self.out_channels}")
        return block


@dataclass(frozen=True)
class HeadUnit:
    """(``final_norm`` + ``final_act`` after pre-activation blocks), ``avgpool``, ``flatten``,
    (``dropout``), ``fc``."""

    stacked: ClassVar[bool] = False
    in_channels: int
    num_classes: int
    dropout: float
    final_norm: bool
    norm: str
    activation: str

    @property
    def out_channels(self) -> int:
        return self.num_classes

    def costed(self) -> HeadUnit:
        return self

    def build(self, drop_path: float = 0.0) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {}
        if self.final_norm:
            modules["final_norm"] = NORMS.get(self.norm)(self.in_channels)
            modules["final_act"] = ACTIVATIONS.get(self.activation)(True)
        modules["avgpool"] = nn.AdaptiveAvgPool2d((1, 1))
        modules["flatten"] = nn.Flatten(1)
        if self.dropout > 0:
            modules["dropout"] = nn.Dropout(self.dropout)
        modules["fc"] = nn.Linear(self.in_channels, self.num_classes)
        return modules


@dataclass(frozen=True)
class Unit:
    """``count`` consecutive modules of one ``kind`` in ``part``; stacked ones are numbered
    ``first``, ``first + 1``, ... in their stage. Stochastic depth is the one thing that differs
    between them: module k gets rate ``max_drop * (block + k) / blocks`` (Huang et al.'s linear
    rule over the network's ``blocks`` blocks, ``block`` being the 1-based index of this unit's
    first one). ``path`` locates the unit in the spec, for errors."""

    part: str
    kind: UnitKind
    count: int = 1
    first: int = 0
    path: str = ""
    max_drop: float = 0.0
    block: int = 0
    blocks: int = 1

    def drop_path(self, k: int) -> float:
        return self.max_drop * (self.block + k) / self.blocks

    def build(self, k: int = 0) -> dict[str, nn.Module]:
        """Module k of the run, by its name in the part (``"3"`` for a block, ``"conv1"``...)."""
        with self.located(k):
            built = self.kind.build(self.drop_path(k))
        return {str(self.first + k): built} if self.kind.stacked else dict(built)

    @property
    def stacked(self) -> bool:
        return self.kind.stacked

    @contextmanager
    def located(self, k: int = 0) -> Iterator[None]:
        """Turns a block's refusal to build (which the spec layer should have caught) into a
        ``SpecError`` at this unit's spec path."""
        try:
            yield
        except (IncompatibleShapes, IncompatibleOptions) as exc:
            raise SpecError(f"block {self.first + k}: {exc}", path=self.path) from None


def _block_unit(spec: Spec, stage: StageSpec, in_channels: int, stride: int,
                beta: float = 1.0) -> BlockUnit:
    """The unit of one block whose settings are ``stage`` (a stage, or ``block_at(j)``)."""
    nf = spec.normfree == "nf"
    return BlockUnit(
        normfree=spec.normfree, nf_alpha=spec.nf_alpha if nf else 0.2, nf_beta=beta if nf else 1.0,
        block=stage.block, in_channels=in_channels, width=stage.width, stride=stride,
        shortcut=stage.shortcut, norm=spec.norm, activation=spec.activation,
        groups=stage.groups, width_per_group=stage.width_per_group, expansion=stage.expansion,
        se_ratio=stage.se_ratio, shortcut_options=tuple(sorted(stage.shortcut_options().items())),
        block_options=tuple(sorted(stage.block_options().items())))


def _next_variance(variance: float, kind: BlockUnit, alpha: float) -> float:
    """NF-ResNet's signal propagation: y = x + alpha·F(x / beta) has variance var(x) + alpha²,
    or 1 + alpha² where x itself is replaced by a projection of x / beta (Brock et al. 2021)."""
    reshaped = kind.in_channels != kind.out_channels or kind.stride != 1
    if kind.shortcut == "none":
        return alpha ** 2
    if kind.shortcut == "full_projection" or (reshaped and kind.shortcut != "zero_pad"):
        return 1.0 + alpha ** 2
    return variance + alpha ** 2


def _stage_runs(spec: Spec, stage: StageSpec, channels: int,
                variance: float = 1.0) -> tuple[list[tuple[BlockUnit, int, int]], float]:
    """A stage's blocks as runs ``(kind, count, first)`` of equal consecutive blocks, and the
    expected variance of its output (NF-ResNets). Blocks differ only where ``stage.blocks``
    says so (and, with a concatenating shortcut, in their input channels; in NF-ResNets, in
    their input's expected std), so a deep stage of one kind is two runs however deep it is."""
    changed = stage.blocks or {}
    concat = SHORTCUTS.get(stage.shortcut).concatenates
    nf = spec.normfree == "nf"
    runs: list[tuple[BlockUnit, int, int]] = []
    j = 0
    while j < stage.depth:
        settings = stage.block_at(j) if j in changed else stage
        kind = _block_unit(spec, settings, channels, stage.stride if j == 0 else 1,
                           beta=variance ** 0.5)
        if nf:
            variance = _next_variance(variance, kind, spec.nf_alpha)
        if concat or nf or j in changed or j == 0:
            count = 1
        else:  # every block up to the next override is this one
            count = min([k for k in changed if k > j], default=stage.depth) - j
        if runs and runs[-1][0] == kind and runs[-1][2] > 0:  # the first block stays alone
            runs[-1] = (kind, runs[-1][1] + count, runs[-1][2])
        else:
            runs.append((kind, count, j))
        channels = kind.out_channels
        j += count
    return runs, variance


def plan(spec: Spec) -> list[Unit]:
    """The network ``spec`` describes, as units in forward order: the stem, each stage's blocks
    (as runs of equal consecutive blocks: the first, the rest, and any per-block settings), the
    head."""
    first_kind = BLOCKS.get(spec.stages[0].block)
    last = spec.stages[-1]
    last_kind = BLOCKS.get(last.block_at(last.depth - 1).block)
    stem = StemUnit(spec.stem.kind, spec.input_channels, spec.stem.width, spec.norm,
                    spec.activation, activate=not first_kind.bare_stem, widths=spec.stem.widths)
    units = [Unit(STEM, stem, path="stem")]
    channels = stem.out_channels
    total = sum(stage.depth for stage in spec.stages)
    done = 0
    variance = 1.0
    for i, stage in enumerate(spec.stages):
        part = f"layer{i + 1}"
        runs, variance = _stage_runs(spec, stage, channels, variance)
        for kind, count, first in runs:
            path = f"stages[{i}].blocks[{first}]" if first in (stage.blocks or {}) \
                else f"stages[{i}]"
            units.append(Unit(part, kind, count, first, path, spec.stochastic_depth,
                              done + first + 1, total))
            channels = kind.out_channels
        done += stage.depth
    head = HeadUnit(channels, spec.num_classes, spec.head.dropout, final_norm=last_kind.preact,
                    norm=spec.norm, activation=spec.activation)
    units.append(Unit(HEAD, head, path="head"))
    return units


def parts(units: list[Unit]) -> Iterator[tuple[str, list[Unit]]]:
    """The units grouped by part (``stem``, ``layer1``..``layerN``, ``head``), in order."""
    group: list[Unit] = []
    for unit in units:
        if group and unit.part != group[0].part:
            yield group[0].part, group
            group = []
        group.append(unit)
    if group:
        yield group[0].part, group
