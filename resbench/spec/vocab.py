"""The words of the spec language: the kinds each axis allows, and what the spec layer must know
about each (no torch here). The compiler's registries in ``resbench.blocks`` implement the same
names; ``tests/compile`` checks that the two agree.

A shortcut kind's options are declared once, on its entry in :data:`SHORTCUTS`: the schema's
fields (top level and per stage), their defaults and the "applies only to" checks, the JSON
Schema's descriptions and the compiler's arguments all come from there."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args


@dataclass(frozen=True)
class Option:
    """One option of a vocabulary entry: a spec field (top level and per stage) of ``type``, set
    to ``default`` where the kind is used and left unset, and refused where it is not.
    ``values_only``: the option sets values (an initial weight, a constant factor), never a
    shape or an operation, so ``resbench.compile.cost`` counts a block with it at its default
    (a test holds every such option to that at several values)."""

    type: type
    default: Any
    description: str  # one line, for the JSON Schema and the docs
    choices: tuple[Any, ...] = ()  # the values allowed, where not every value of ``type`` is
    range: tuple[float, float] | None = None  # (lo, hi]: a float option's bounds, if any
    values_only: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.default, self.type):
            raise TypeError(f"default {self.default!r} is not a {self.type.__name__}")
        if self.choices and self.default not in self.choices:
            raise TypeError(f"default {self.default!r} is not one of {self.choices}")


@dataclass(frozen=True)
class BlockInfo:
    """What the spec layer needs to know of a block kind to check shapes and count depth;
    ``options`` are spec fields (top level, per stage, per block) that only this kind uses."""

    convs: int  # weighted layers on the residual branch, as the papers count depth
    expansion: int  # default output channels / width
    grouped: bool  # whether groups / width_per_group apply
    options: Mapping[str, Option] = field(default_factory=dict)


@dataclass(frozen=True)
class StemInfo:
    convs: int
    width: int  # default output channels
    input_size: int  # default input resolution for cost
    reduction: int  # spatial downsampling factor of the stem
    description: str = ""


@dataclass(frozen=True)
class ShortcutInfo:
    """What the spec layer knows of a shortcut kind; ``formula`` and ``reshaped`` are the docs'
    words for y and for what happens to x where a block changes shape."""

    formula: str
    reshaped: str
    options: Mapping[str, Option] = field(default_factory=dict)
    reshapes: bool = True  # can bridge a change of channels or stride
    narrows: bool = True  # can also reduce channels (zero padding only adds them)
    concatenates: bool = False  # y has x's channels and F(x)'s (else F(x)'s shape)


BLOCKS: dict[str, BlockInfo] = {
    "basic": BlockInfo(convs=2, expansion=1, grouped=False),
    "bottleneck": BlockInfo(convs=3, expansion=4, grouped=True),
    "preact_basic": BlockInfo(convs=2, expansion=1, grouped=False),
    "preact_bottleneck": BlockInfo(convs=3, expansion=4, grouped=True),
    # RegNet's X/Y block (Radosavovic et al. 2020; torchvision's ResBottleneckBlock): 1x1 to
    # round(width * bottleneck_ratio), 3x3 grouped in groups of group_width (stride), SE sized
    # from the block's input (round(se_ratio * in_channels)) on the inner width, 1x1 to width.
    "regnet": BlockInfo(convs=3, expansion=1, grouped=False, options={
        "bottleneck_ratio": Option(float, 1.0, "Inner width / width of a RegNet block.",
                                   range=(0.0, 64.0)),
        "group_width": Option(int, 8, "Channels per group of a RegNet block's 3x3 conv."),
    }),
    # DenseNet's layer (Huang et al. 2017; torchvision's _DenseLayer): norm, act, 1x1 conv to
    # bn_size * width, norm, act, 3x3 conv to width (the growth rate); with the concat shortcut
    # its output is cat(x, F(x)).
    "dense": BlockInfo(convs=2, expansion=1, grouped=False, options={
        "bn_size": Option(int, 4, "Bottleneck of a dense layer: its 1x1 conv's width in "
                          "multiples of the growth rate (width)."),
    }),
    # DenseNet's transition (torchvision's _Transition): norm, act, 1x1 conv to
    # int(in_channels * compression) channels, 2x2 average pool (stride); no shortcut.
    "transition": BlockInfo(convs=1, expansion=1, grouped=False, options={
        "compression": Option(float, 0.5, "Output channels / input channels of a transition.",
                              range=(0.0, 1.0)),
    }),
}
# Blocks whose output width follows from their input (a transition's width is resolved from it).
INPUT_SIZED_BLOCKS = frozenset({"transition"})
STEMS: dict[str, StemInfo] = {
    "cifar": StemInfo(convs=1, width=16, input_size=32, reduction=1,
                      description="one 3x3 conv, stride 1"),
    "imagenet": StemInfo(convs=1, width=64, input_size=224, reduction=4,
                         description="7x7 conv stride 2, 3x3 max-pool stride 2"),
    "deep": StemInfo(convs=3, width=64, input_size=224, reduction=4,
                     description='three 3x3 convs (widths: width/2, width/2, width, or "widths"), '
                     'the first stride 2, then a 3x3 max-pool stride 2 ("ResNet-C")'),
    "conv3x3": StemInfo(convs=1, width=32, input_size=224, reduction=2,
                        description="one 3x3 conv stride 2 (RegNet's stem)"),
}
# Stems whose convolutions can be given one width each (``stem.widths``): how many convs.
STEM_WIDTHS: dict[str, int] = {"deep": 3}
SHORTCUTS: dict[str, ShortcutInfo] = {
    "identity": ShortcutInfo("F(x) + x", "error (caught at load time)", reshapes=False),
    "zero_pad": ShortcutInfo("F(x) + x", 'strided subsample + zero channels ("option A", no '
                             "parameters)", narrows=False),
    "projection": ShortcutInfo("F(x) + x", '1x1 conv (stride) + norm ("option B")'),
    "full_projection": ShortcutInfo("F(x) + P(x)", '1x1 conv + norm in every block ("option C")'),
    "avgpool_projection": ShortcutInfo("F(x) + x", "avg-pool (stride) then 1x1 conv + norm "
                                       '("ResNet-D")'),
    "gated": ShortcutInfo(
        "T·F(x) + (1−T)·x, T = σ(conv(x) + gate_bias)", "x projected (option B) first",
        options={"gate_bias": Option(float, -1.0, "Initial bias of the highway gate's conv: "
                                     "the gate starts near σ(gate_bias).",
                                     range=(-1000.0, 1000.0), values_only=True),
                 "gate_kernel": Option(int, 1, "Kernel size of the highway gate's conv (1x1 or "
                                       "3x3, stride of the block).", choices=(1, 3))}),
    "scaled": ShortcutInfo(
        "F(x) + scale·x", "x projected (option B) first",
        options={"scale": Option(float, 0.5, "Factor on the carried x.",
                                 range=(-1000.0, 1000.0), values_only=True)}),
    "none": ShortcutInfo("F(x)", "— (a plain network)"),
    "concat": ShortcutInfo("cat(x, F(x))", "error: only channels are added (DenseNet)",
                           reshapes=False, concatenates=True),
}

# The names pydantic validates against (and lists when a word is unknown), in declaration order.
BlockKind = Literal[tuple(BLOCKS)]  # type: ignore[valid-type]
StemKind = Literal[tuple(STEMS)]  # type: ignore[valid-type]
ShortcutKind = Literal[tuple(SHORTCUTS)]  # type: ignore[valid-type]
NormKind = Literal["batch", "group", "none"]
# Ways to train deep residual nets without normalisation (``normfree``): none; SkipInit/ReZero,
# a learnable scalar on each branch starting at 0 (De & Smith 2020; Bachlechner et al. 2020);
# Fixup (Zhang et al. 2019); NF-ResNet's scaled weight standardisation with alpha/beta signal
# scaling (Brock et al. 2021).
NormFreeKind = Literal["none", "skipinit", "fixup", "nf"]
NORMFREE: tuple[str, ...] = get_args(NormFreeKind)
NORMFREE_BLOCKS = frozenset({"basic", "bottleneck"})  # the blocks that implement them
ActivationKind = Literal["relu", "gelu", "silu"]
NORMS: tuple[str, ...] = get_args(NormKind)
ACTIVATIONS: tuple[str, ...] = get_args(ActivationKind)

# Shortcuts that can bridge a change of shape (channels or stride) between input and output.
RESHAPING_SHORTCUTS = frozenset(k for k, info in SHORTCUTS.items() if info.reshapes)

# Every shortcut option, by field name: (its kind, its declaration). Names are spec fields, so
# they must differ between kinds.
SHORTCUT_OPTIONS: dict[str, tuple[str, Option]] = {
    name: (kind, option)
    for kind, info in SHORTCUTS.items() for name, option in info.options.items()}
assert len(SHORTCUT_OPTIONS) == sum(len(info.options) for info in SHORTCUTS.values()), \
    "two shortcut kinds declare an option of the same name"

# Options that every stage's canonical form (and so every spec key) lists, null where the stage's
# kind is another: stages always listed these two, and the keys in users' results depend on it.
# Options declared since appear only in stages of their own kind, so adding one changes no key.
ALWAYS_KEYED_OPTIONS = frozenset({"gate_bias", "scale"})

# Every block-kind option, by field name: (its kind, its declaration).
BLOCK_OPTIONS: dict[str, tuple[str, Option]] = {
    name: (kind, option)
    for kind, info in BLOCKS.items() for name, option in info.options.items()}
# Every option of a kind, by field name: (the axis, "block" or "shortcut"; the kind; the option).
KIND_OPTIONS: dict[str, tuple[str, str, Option]] = {
    **{name: ("shortcut", kind, option) for name, (kind, option) in SHORTCUT_OPTIONS.items()},
    **{name: ("block", kind, option) for name, (kind, option) in BLOCK_OPTIONS.items()},
}
assert len(KIND_OPTIONS) == len(SHORTCUT_OPTIONS) + len(BLOCK_OPTIONS), \
    "a block option and a shortcut option share a name"
