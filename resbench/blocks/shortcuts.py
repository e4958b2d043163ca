"""Shortcut kinds: how x reaches a block's output. Each kind is a small module whose
``forward(f, x, pre)`` merges the residual branch's output ``f`` = F(x) with the block input
``x``; ``pre`` is what its learnable layers read (the block's shared act(bn1(x)) in
pre-activation blocks, He et al. 2016; ``x`` otherwise), while parameter-free paths read ``x``.
Every choice is made at construction, so the forward does no lookups.

A block registers its shortcut's layers (``downsample``, ``gate``) as its own children, so
state_dict keys and ``named_parameters()`` keep torchvision's names, and keeps the shortcut
module itself unregistered (key-mapping hooks would make parameter names differ from state_dict
keys). Hence a shortcut holds every tensor in a child layer, none of its own.

Adding a kind is one vocabulary entry (``resbench.spec.vocab.SHORTCUTS``: formula, options with
their defaults) and one class here, registered under the same name, that takes those options as
keyword arguments.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resbench.blocks.layers import conv
from resbench.registry import Registry
from resbench.spec.vocab import SHORTCUTS as VOCABULARY

if TYPE_CHECKING:
    from resbench.blocks.residual import BlockOptions


class IncompatibleShapes(ValueError):
    """A shortcut cannot carry x to the block's output shape (the spec layer should catch it)."""


def keeps_shape(in_channels: int, out_channels: int, stride: int) -> bool:
    return in_channels == out_channels and stride == 1


class Shortcut(nn.Module):
    """Base of every kind: y = f + carry(x, pre), where ``carry`` is x itself, or its
    ``downsample`` (which reads ``pre``) where the kind has one.

    Built as ``Kind(in_channels, out_channels, stride, opts, preact=..., **options)``; ``opts``
    gives the norm and conv bias of its layers, ``preact`` whether it sits in a pre-activation
    block (projections there have no norm). ``forward`` may add into ``f`` in place.
    """

    name: ClassVar[str] = ""
    concatenates: ClassVar[bool] = False  # y has x's and F(x)'s channels (the vocabulary's)

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.downsample: nn.Module | None = None

    @classmethod
    def options(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options this kind declares in the vocabulary, from ``given`` where set (not None),
        else their defaults; an option the kind does not declare is refused."""
        declared = VOCABULARY[cls.name].options
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise TypeError(f"shortcut {cls.name!r} has no option {unknown[0]!r}; its options: "
                            f"{', '.join(declared) or 'none'}")
        return {name: option.default if given.get(name) is None else given[name]
                for name, option in declared.items()}

    def carry(self, x: Tensor, pre: Tensor) -> Tensor:
        """x as it reaches the output."""
        return x if self.downsample is None else self.downsample(pre)

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        down = self.downsample  # carry(x, pre), inlined: this runs in every block
        return f.add_(x if down is None else down(pre))

    def _require_same_shape(self) -> None:
        if not keeps_shape(self.in_channels, self.out_channels, self.stride):
            raise IncompatibleShapes(
                f"shortcut {self.name!r} needs the block to keep its shape, but it maps "
                f"{self.in_channels} channels to {self.out_channels} with stride {self.stride}; "
                "use zero_pad, projection or avgpool_projection where the shape changes")

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


S = TypeVar("S", bound=type[Shortcut])
SHORTCUTS: Registry[type[Shortcut]] = Registry("shortcut")


def register(name: str) -> Callable[[S], S]:
    """Register a shortcut class under its vocabulary name, which it keeps as ``name``."""

    def add(cls: S) -> S:
        cls.name = name
        return SHORTCUTS.register(name)(cls)

    return add


def projection(in_channels: int, out_channels: int, stride: int, opts: BlockOptions,
               preact: bool, avgpool: bool = False) -> nn.Sequential:
    """1x1 conv (stride) + norm, torchvision's ``downsample``; ResNet-D (``avgpool``) puts an
    average pool first and keeps the conv at stride 1; pre-activation blocks omit the norm."""
    layers: list[nn.Module] = []
    if avgpool:
        layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)
                      if stride > 1 else nn.Identity())  # keeps timm's downsample.1/.2 names
        stride = 1
    layers.append(conv(in_channels, out_channels, 1, stride, bias=opts.conv_bias))
    if not preact:
        layers.append(opts.norm(out_channels))
    return nn.Sequential(*layers)


def projection_where_reshaped(in_channels: int, out_channels: int, stride: int,
                              opts: BlockOptions, preact: bool,
                              avgpool: bool = False) -> nn.Sequential | None:
    """Option B's rule: no ``downsample`` where the block keeps its shape, a projection where
    it changes."""
    if keeps_shape(in_channels, out_channels, stride):
        return None
    return projection(in_channels, out_channels, stride, opts, preact, avgpool=avgpool)


class ZeroPad(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise IncompatibleShapes(
                f"zero_pad cannot shrink {in_channels} channels to {out_channels}; "
                "use projection")
        self.stride = stride
        self.pad = (0, 0, 0, 0, 0, out_channels - in_channels)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, self.pad)

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad_channels={self.pad[-1]}"


class Gate(nn.Conv2d):
    """The transform gate T = σ(gate(x)): a 1x1 (or ``kernel`` x ``kernel``, same-padded) conv
    whose bias starts at ``gate_bias``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, gate_bias: float,
                 kernel: int = 1) -> None:
        self.gate_bias = gate_bias
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2,
                         bias=True)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.constant_(self.bias, self.gate_bias)


@register("identity")
class IdentityShortcut(Shortcut):
    """y = F(x) + x, only where the block keeps its shape."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        self._require_same_shape()


@register("zero_pad")
class ZeroPadShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is subsampled and zero-padded (option A)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        if not keeps_shape(in_channels, out_channels, stride):
            self.downsample = ZeroPad(in_channels, out_channels, stride)

    def carry(self, x: Tensor, pre: Tensor) -> Tensor:
        return x if self.downsample is None else self.downsample(x)  # no parameters: reads x

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        return f.add_(self.carry(x, pre))


@register("projection")
class ProjectionShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is projected by 1x1 conv + norm (option B)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.downsample = projection_where_reshaped(in_channels, out_channels, stride, opts, preact)


@register("full_projection")
class FullProjectionShortcut(Shortcut):
    """y = F(x) + P(x), P = 1x1 conv + norm in every block (option C)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.downsample = projection(in_channels, out_channels, stride, opts, preact)


@register("avgpool_projection")
class AvgPoolProjectionShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is average-pooled, 1x1 conv + norm (ResNet-D)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.downsample = projection_where_reshaped(in_channels, out_channels, stride, opts, preact,
                                                    avgpool=True)


@register("gated")
class GatedShortcut(Shortcut):
    """y = T·F(x) + (1−T)·x, T = σ(conv(x) + gate_bias) (highway; a 1x1 or 3x3 conv); x
    projected (option B) where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool, gate_bias: float, gate_kernel: int = 1) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.gate = Gate(in_channels, out_channels, stride, gate_bias,  # first: torchvision order
                         gate_kernel)
        self.downsample = projection_where_reshaped(in_channels, out_channels, stride, opts, preact)

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        t = torch.sigmoid(self.gate(pre))
        s = self.carry(x, pre)
        return s + t * (f - s)


@register("scaled")
class ScaledShortcut(Shortcut):
    """y = F(x) + scale·x; x projected (option B) where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool, scale: float) -> None:
        super().__init__(in_channels, out_channels, stride)
        self.scale = float(scale)
        self.downsample = projection_where_reshaped(in_channels, out_channels, stride, opts, preact)

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        return f.add_(self.carry(x, pre), alpha=self.scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


@register("none")
class NoShortcut(Shortcut):
    """y = F(x): no skip at all (a plain network); not even an add is allocated."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        return f


@register("concat")
class ConcatShortcut(Shortcut):
    """y = cat(x, F(x)) along channels (DenseNet): x's channels first, then the branch's; the
    resolution cannot change."""

    concatenates = True

    def __init__(self, in_channels: int, out_channels: int, stride: int, opts: BlockOptions, *,
                 preact: bool) -> None:
        super().__init__(in_channels, out_channels, stride)
        if stride != 1:
            raise IncompatibleShapes(f"a concat shortcut keeps the resolution, but the block has "
                                     f"stride {stride}")

    def forward(self, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
        return torch.cat((x, f), 1)
