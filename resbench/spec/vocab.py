"""The words of the spec language: the kinds each axis allows, and what the spec layer must know
about each (no torch here). The compiler's registries in ``resbench.blocks`` implement the same
names; ``tests/compile`` checks that the two agree."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args


@dataclass(frozen=True)
class BlockInfo:
    """What the spec layer needs to know of a block kind to check shapes and count depth."""

    convs: int  # weighted layers on the residual branch, as the papers count depth
    expansion: int  # default output channels / width
    grouped: bool  # whether groups / width_per_group apply


@dataclass(frozen=True)
class StemInfo:
    convs: int
    width: int  # default output channels
    input_size: int  # default input resolution for cost
    reduction: int  # spatial downsampling factor of the stem


BlockKind = Literal["basic", "bottleneck", "preact_basic", "preact_bottleneck"]
StemKind = Literal["cifar", "imagenet", "deep"]
ShortcutKind = Literal[
    "identity",
    "zero_pad",
    "projection",
    "full_projection",
    "avgpool_projection",
    "gated",
    "scaled",
    "none",
]
NormKind = Literal["batch", "group", "none"]
ActivationKind = Literal["relu", "gelu", "silu"]

BLOCKS: dict[str, BlockInfo] = {
    "basic": BlockInfo(convs=2, expansion=1, grouped=False),
    "bottleneck": BlockInfo(convs=3, expansion=4, grouped=True),
    "preact_basic": BlockInfo(convs=2, expansion=1, grouped=False),
    "preact_bottleneck": BlockInfo(convs=3, expansion=4, grouped=True),
}
STEMS: dict[str, StemInfo] = {
    "cifar": StemInfo(convs=1, width=16, input_size=32, reduction=1),
    "imagenet": StemInfo(convs=1, width=64, input_size=224, reduction=4),
    "deep": StemInfo(convs=3, width=64, input_size=224, reduction=4),
}
SHORTCUTS: tuple[str, ...] = get_args(ShortcutKind)
NORMS: tuple[str, ...] = get_args(NormKind)
ACTIVATIONS: tuple[str, ...] = get_args(ActivationKind)

# Shortcuts that can bridge a change of shape (channels or stride) between input and output.
RESHAPING_SHORTCUTS = frozenset(SHORTCUTS) - {"identity"}

DEFAULT_GATE_BIAS = -1.0
DEFAULT_SCALE = 0.5

assert set(BLOCKS) == set(get_args(BlockKind)) and set(STEMS) == set(get_args(StemKind))
