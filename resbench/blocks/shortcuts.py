"""Shortcut kinds: how x reaches a block's output.

A kind's ``attach`` adds the skip path's modules to the block (``downsample``, ``gate``, ``scale``)
and returns the *merge* the block's forward calls as ``merge(block, f, x, pre)``: ``f`` is the
residual branch's output F(x), ``x`` the block input and ``pre`` the tensor learnable shortcut
layers read (the shared pre-activation in pre-activation blocks, He et al. 2016; ``x`` otherwise).
Everything is chosen at construction, so the forward does no lookups. Adding a kind is one class
and one registration.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resbench.blocks.layers import conv
from resbench.registry import Registry

if TYPE_CHECKING:
    from resbench.blocks.residual import BlockOptions, ResidualBlock

Merge = Callable[["ResidualBlock", Tensor, Tensor, Tensor], Tensor]


class IncompatibleShapes(ValueError):
    """A shortcut cannot carry x to the block's output shape (the spec layer should catch it)."""


def add_identity(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f.add_(x)


def add_padded(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f.add_(block.downsample(x))


def add_projected(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f.add_(block.downsample(pre))


def branch_only(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f


def gated_identity(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    t = torch.sigmoid(block.gate(pre))
    return x + t * (f - x)


def gated_projected(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    t = torch.sigmoid(block.gate(pre))
    s = block.downsample(pre)
    return s + t * (f - s)


def scaled_identity(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f.add_(x, alpha=block.scale)


def scaled_projected(block: ResidualBlock, f: Tensor, x: Tensor, pre: Tensor) -> Tensor:
    return f.add_(block.downsample(pre), alpha=block.scale)


class Shortcut:
    """One shortcut kind; subclasses implement ``attach``."""

    name = ""

    def attach(self, block: ResidualBlock, in_channels: int, out_channels: int, stride: int,
               opts: BlockOptions) -> Merge:
        raise NotImplementedError

    def _require_same_shape(self, in_channels: int, out_channels: int, stride: int) -> None:
        if in_channels != out_channels or stride != 1:
            raise IncompatibleShapes(
                f"shortcut {self.name!r} needs the block to keep its shape, but it maps "
                f"{in_channels} channels to {out_channels} with stride {stride}; use zero_pad, "
                "projection or avgpool_projection where the shape changes")


def keeps_shape(in_channels: int, out_channels: int, stride: int) -> bool:
    return in_channels == out_channels and stride == 1


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


def project_where_reshaped(block: ResidualBlock, in_channels: int, out_channels: int,
                           stride: int, opts: BlockOptions, same: Merge, reshaped: Merge, *,
                           avgpool: bool = False) -> Merge:
    """Option B's rule: no ``downsample`` (merge ``same``) where the block keeps its shape, a
    projection (merge ``reshaped``) where it changes."""
    if keeps_shape(in_channels, out_channels, stride):
        block.downsample = None
        return same
    block.downsample = projection(in_channels, out_channels, stride, opts, block.preact,
                                  avgpool=avgpool)
    return reshaped


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
    """The transform gate T = σ(gate(x)): a 1x1 conv whose bias starts at ``gate_bias``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, gate_bias: float) -> None:
        self.gate_bias = gate_bias
        super().__init__(in_channels, out_channels, 1, stride=stride, bias=True)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.constant_(self.bias, self.gate_bias)


SHORTCUTS: Registry[type[Shortcut]] = Registry("shortcut")


@SHORTCUTS.register("identity")
class IdentityShortcut(Shortcut):
    """y = F(x) + x, only where the block keeps its shape."""

    name = "identity"

    def attach(self, block, in_channels, out_channels, stride, opts):
        self._require_same_shape(in_channels, out_channels, stride)
        block.downsample = None
        return add_identity


@SHORTCUTS.register("zero_pad")
class ZeroPadShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is subsampled and zero-padded (option A)."""

    name = "zero_pad"

    def attach(self, block, in_channels, out_channels, stride, opts):
        if keeps_shape(in_channels, out_channels, stride):
            block.downsample = None
            return add_identity
        block.downsample = ZeroPad(in_channels, out_channels, stride)
        return add_padded


@SHORTCUTS.register("projection")
class ProjectionShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is projected by 1x1 conv + norm (option B)."""

    name = "projection"

    def attach(self, block, in_channels, out_channels, stride, opts):
        return project_where_reshaped(block, in_channels, out_channels, stride, opts,
                                      add_identity, add_projected)


@SHORTCUTS.register("full_projection")
class FullProjectionShortcut(Shortcut):
    """y = F(x) + P(x), P = 1x1 conv + norm in every block (option C)."""

    name = "full_projection"

    def attach(self, block, in_channels, out_channels, stride, opts):
        block.downsample = projection(in_channels, out_channels, stride, opts, block.preact)
        return add_projected


@SHORTCUTS.register("avgpool_projection")
class AvgPoolProjectionShortcut(Shortcut):
    """y = F(x) + x; where the shape changes x is average-pooled, 1x1 conv + norm (ResNet-D)."""

    name = "avgpool_projection"

    def attach(self, block, in_channels, out_channels, stride, opts):
        return project_where_reshaped(block, in_channels, out_channels, stride, opts,
                                      add_identity, add_projected, avgpool=True)


@SHORTCUTS.register("gated")
class GatedShortcut(Shortcut):
    """y = T·F(x) + (1−T)·x, T = σ(conv1x1(x) + gate_bias) (highway); x projected (option B)
    where the shape changes."""

    name = "gated"

    def attach(self, block, in_channels, out_channels, stride, opts):
        block.gate = Gate(in_channels, out_channels, stride, opts.gate_bias)
        return project_where_reshaped(block, in_channels, out_channels, stride, opts,
                                      gated_identity, gated_projected)


@SHORTCUTS.register("scaled")
class ScaledShortcut(Shortcut):
    """y = F(x) + scale·x; x projected (option B) where the shape changes."""

    name = "scaled"

    def attach(self, block, in_channels, out_channels, stride, opts):
        block.scale = float(opts.scale)
        return project_where_reshaped(block, in_channels, out_channels, stride, opts,
                                      scaled_identity, scaled_projected)


@SHORTCUTS.register("none")
class NoShortcut(Shortcut):
    """y = F(x): no skip at all (a plain network)."""

    name = "none"

    def attach(self, block, in_channels, out_channels, stride, opts):
        block.downsample = None
        return branch_only
