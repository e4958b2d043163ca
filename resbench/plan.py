"""The compile plan: a network as a list of :class:`Unit` s in forward order, which both
``ResNet.__init__`` (to build the modules) and ``cost()`` (to count them) walk.

A unit is a run of ``count`` consecutive modules that are built from the same *unit kind*: a
frozen, hashable dataclass of everything the module's construction depends on (its signature,
stochastic depth aside) and a ``build(drop_path)`` method returning the module(s). Equal kinds
build modules of equal shapes, so ``cost()`` measures each distinct kind once per input shape
(memoised) and multiplies by ``count``; a stage of depth 10^6 is two units.

A unit belongs to a *part*: ``stem`` and ``head`` are flat (their modules are the network's own
children, under the names the kind gives them: ``conv1``, ``bn1``, ... ``fc``); ``layer{i}`` is
stacked (an ``nn.Sequential`` of the units' modules, numbered from 0, so blocks are
``layer{i}.{j}``). Module names and construction order are torchvision's, so its state_dicts
load strictly and seeded builds are reproducible.

Adding a unit kind (a new block family, a transition layer, another head):
  1. a frozen dataclass here with the fields its module depends on, ``out_channels`` (a field
     or property), ``stacked`` (True: numbered inside its stage; False: named children of the
     network) and ``build(drop_path) -> nn.Module`` (stacked) or ``dict[str, nn.Module]`` (flat),
     building only from its fields;
  2. the lines in :func:`plan` that emit it, grouping consecutive equal kinds into one unit.
Nothing else changes: the network and the cost walk every kind alike.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Union

from torch import nn

from resbench.blocks import (
    ACTIVATIONS,
    BLOCKS,
    NORMS,
    STEMS,
    BlockOptions,
    IncompatibleOptions,
    IncompatibleShapes,
)
from resbench.errors import SpecError
from resbench.spec import Spec

STEM, HEAD = "stem", "head"

Built = Union[nn.Module, dict[str, nn.Module]]


class UnitKind(Protocol):
    """What every unit kind offers (see the module docstring)."""

    stacked: ClassVar[bool]

    @property
    def out_channels(self) -> int: ...

    def build(self, drop_path: float = 0.0) -> Built: ...


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

    @property
    def out_channels(self) -> int:
        return self.width

    def build(self, drop_path: float = 0.0) -> dict[str, nn.Module]:
        stem = STEMS.get(self.kind)(
            self.in_channels, self.width, norm=NORMS.get(self.norm),
            act=ACTIVATIONS.get(self.activation), conv_bias=self.norm == "none",
            activate=self.activate)
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

    @property
    def out_channels(self) -> int:
        return self.width * self.expansion

    def build(self, drop_path: float = 0.0) -> nn.Module:
        opts = BlockOptions.of(
            shortcut=self.shortcut, norm=self.norm, activation=self.activation,
            groups=self.groups, width_per_group=self.width_per_group, expansion=self.expansion,
            se_ratio=self.se_ratio, drop_path=drop_path, **dict(self.shortcut_options))
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


def _block_unit(spec: Spec, i: int, in_channels: int, stride: int) -> BlockUnit:
    stage = spec.stages[i]
    return BlockUnit(
        block=stage.block, in_channels=in_channels, width=stage.width, stride=stride,
        shortcut=stage.shortcut, norm=spec.norm, activation=spec.activation,
        groups=stage.groups, width_per_group=stage.width_per_group, expansion=stage.expansion,
        se_ratio=stage.se_ratio, shortcut_options=tuple(sorted(stage.shortcut_options().items())))


def plan(spec: Spec) -> list[Unit]:
    """The network ``spec`` describes, as units in forward order: the stem, each stage's blocks
    (its first block, then the rest as one run of equal blocks), the head."""
    preact = [BLOCKS.get(stage.block).preact for stage in spec.stages]
    stem = StemUnit(spec.stem.kind, spec.input_channels, spec.stem.width, spec.norm,
                    spec.activation, activate=not preact[0])
    units = [Unit(STEM, stem, path="stem")]
    channels = stem.out_channels
    total = sum(stage.depth for stage in spec.stages)
    done = 0
    for i, stage in enumerate(spec.stages):
        part, path = f"layer{i + 1}", f"stages[{i}]"
        first = _block_unit(spec, i, channels, stage.stride)
        units.append(Unit(part, first, 1, 0, path, spec.stochastic_depth, done + 1, total))
        channels = first.out_channels
        if stage.depth > 1:
            rest = dataclasses.replace(first, in_channels=channels, stride=1)
            units.append(Unit(part, rest, stage.depth - 1, 1, path, spec.stochastic_depth,
                              done + 2, total))
        done += stage.depth
    head = HeadUnit(channels, spec.num_classes, spec.head.dropout, final_norm=preact[-1],
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
