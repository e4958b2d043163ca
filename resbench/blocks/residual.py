"""Residual blocks. Every block is built as ``Block(in_channels, width, stride, opts)`` (pycls
style), so a stage can stack any kind; its output has ``width * opts.expansion`` channels.
Layer names follow torchvision (conv1, bn1, ..., downsample) so torchvision weights load as is."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from resbench.blocks.layers import (
    ACTIVATIONS,
    NORMS,
    ActFactory,
    DropPath,
    NormFactory,
    SqueezeExcite,
    conv,
    no_norm,
)
from resbench.blocks.shortcuts import SHORTCUTS, Shortcut
from resbench.registry import Registry


class IncompatibleOptions(ValueError):
    """A block kind does not support an option value (the spec layer should have said so)."""


@dataclass(frozen=True)
class BlockOptions:
    """Everything a block needs besides (in_channels, width, stride), resolved once per stage."""

    shortcut: type[Shortcut]
    norm: NormFactory
    act: ActFactory
    groups: int = 1
    width_per_group: int = 64
    expansion: int = 1
    se_ratio: float = 0.0
    drop_path: float = 0.0
    shortcut_options: Mapping[str, Any] = field(default_factory=dict)  # the kind's, all set

    @property
    def normalized(self) -> bool:
        return self.norm is not no_norm

    @property
    def conv_bias(self) -> bool:
        """Without a norm after them, convolutions carry their own bias."""
        return not self.normalized

    def make_shortcut(self, in_channels: int, out_channels: int, stride: int, *,
                      preact: bool) -> Shortcut:
        """The shortcut module of one block."""
        return self.shortcut(in_channels, out_channels, stride, self, preact=preact,
                             **self.shortcut_options)

    @classmethod
    def of(cls, *, shortcut: str = "identity", norm: str = "batch", activation: str = "relu",
           groups: int = 1, width_per_group: int = 64, expansion: int = 1, se_ratio: float = 0.0,
           drop_path: float = 0.0, **shortcut_options: Any) -> BlockOptions:
        """Options from registry names (``shortcut="gated"``, ``norm="group"``, ...); the
        shortcut's own options (``gate_bias=-2.0``) default to the vocabulary's values."""
        kind = SHORTCUTS.get(shortcut)
        return cls(kind, NORMS.get(norm), ACTIVATIONS.get(activation), groups, width_per_group,
                   expansion, se_ratio, drop_path, kind.options(shortcut_options))


class ResidualBlock(nn.Module):
    """Base of every block: y = shortcut(F(x), x, pre), the merge of the shortcut kind.

    The shortcut's layers are the block's own children (``downsample``, ``gate``: torchvision's
    names); the shortcut module is not registered (see ``resbench.blocks.shortcuts``), so the
    block calls its ``forward`` directly (FX, and so torchvision's feature extraction, trace
    only calls of registered modules) and passes ``train()``/``eval()`` on to it.
    """

    preact: ClassVar[bool] = False

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = width * opts.expansion
        self.stride = stride

    def _attach_tail(self, opts: BlockOptions) -> None:
        """Squeeze-excitation and stochastic depth on F(x), then the shortcut (last, so that
        state_dict keys keep torchvision's order)."""
        self.se = (SqueezeExcite(self.out_channels, opts.se_ratio, opts.act)
                   if opts.se_ratio > 0 else None)
        self.drop_path = DropPath(opts.drop_path) if opts.drop_path > 0 else None
        shortcut = opts.make_shortcut(self.in_channels, self.out_channels, self.stride,
                                      preact=self.preact)
        if [*shortcut.parameters(recurse=False), *shortcut.buffers(recurse=False)]:
            raise TypeError(f"shortcut {shortcut.name!r} must keep its tensors in child layers, "
                            "which its block registers")
        for name, layer in shortcut.named_children():
            self.add_module(name, layer)
        if "downsample" not in self._modules:
            self.downsample = None  # as in torchvision: every block has one
        self.__dict__["shortcut"] = shortcut

    def train(self, mode: bool = True) -> ResidualBlock:
        super().train(mode)
        self.shortcut.train(mode)
        return self

    def _branch_end(self) -> tuple[nn.Module, ...]:
        """The branch's last layers, last norm first: what ``zero_init_last`` zeroes."""
        raise NotImplementedError

    def branch_end(self) -> nn.Module:
        """The residual branch's last layer: its output is F(x) before squeeze-excitation and
        stochastic depth (what a lesion study zeroes to remove the branch)."""
        return self._branch_end()[0]

    @property
    def changes_shape(self) -> bool:
        """Whether the block changes the shape, so that its shortcut downsamples or projects."""
        return self.stride != 1 or self.in_channels != self.out_channels

    def zero_init_last(self) -> None:
        """Zero the branch's last norm (or its last conv when no norm follows it), so that the
        block starts as its shortcut (Goyal et al. 2017)."""
        for layer in self._branch_end():
            if getattr(layer, "weight", None) is not None:
                nn.init.zeros_(layer.weight)
                if getattr(layer, "bias", None) is not None:
                    nn.init.zeros_(layer.bias)
                return

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"


BLOCKS: Registry[type[ResidualBlock]] = Registry("block")


def _basic_only(opts: BlockOptions, kind: str) -> None:
    if opts.groups != 1 or opts.width_per_group != 64:
        raise IncompatibleOptions(
            f"{kind} blocks support only groups=1 and width_per_group=64, "
            f"got groups={opts.groups}, width_per_group={opts.width_per_group}")


def _inner_width(width: int, opts: BlockOptions) -> int:
    return int(width * opts.width_per_group / 64) * opts.groups


@BLOCKS.register("basic")
class BasicBlock(ResidualBlock):
    """y = act(shortcut(F(x), x)), F = bn2(conv2(act(bn1(conv1(x))))): two 3x3 convs (He 2015)."""

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        _basic_only(opts, "basic")
        bias = opts.conv_bias
        self.conv1 = conv(in_channels, width, 3, stride, bias=bias)
        self.bn1 = opts.norm(width)
        self.relu = opts.act(True)
        self.conv2 = conv(width, self.out_channels, 3, bias=bias)
        self.bn2 = opts.norm(self.out_channels)
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.bn2, self.conv2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.relu(self.shortcut.forward(out, x, x))


@BLOCKS.register("bottleneck")
class Bottleneck(ResidualBlock):
    """y = act(shortcut(F(x), x)), F = 1x1 reduce, 3x3 (stride, groups), 1x1 expand, each normed
    (ResNet v1.5: the stride sits on the 3x3, as in torchvision)."""

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        inner = _inner_width(width, opts)
        bias = opts.conv_bias
        self.conv1 = conv(in_channels, inner, 1, bias=bias)
        self.bn1 = opts.norm(inner)
        self.conv2 = conv(inner, inner, 3, stride, opts.groups, bias=bias)
        self.bn2 = opts.norm(inner)
        self.conv3 = conv(inner, self.out_channels, 1, bias=bias)
        self.bn3 = opts.norm(self.out_channels)
        self.relu = opts.act(True)
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.bn3, self.conv3)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.relu(self.shortcut.forward(out, x, x))


@BLOCKS.register("preact_basic")
class PreActBasicBlock(ResidualBlock):
    """y = shortcut(F(x), x), F = conv2(act(bn2(conv1(act(bn1(x)))))), full pre-activation
    (He et al. 2016); projecting shortcuts read the shared act(bn1(x))."""

    preact = True

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        _basic_only(opts, "preact_basic")
        bias = opts.conv_bias
        self.bn1 = opts.norm(in_channels)
        self.relu = opts.act(opts.normalized)  # without a norm, act(x) in place would clobber x
        self.conv1 = conv(in_channels, width, 3, stride, bias=bias)
        self.bn2 = opts.norm(width)
        self.conv2 = conv(width, self.out_channels, 3, bias=bias)
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.conv2,)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.shortcut.forward(out, x, pre)


@BLOCKS.register("preact_bottleneck")
class PreActBottleneck(ResidualBlock):
    """y = shortcut(F(x), x), F = conv3(act(bn3(conv2(act(bn2(conv1(act(bn1(x))))))))), the
    pre-activation bottleneck (He et al. 2016; stride on the 3x3)."""

    preact = True

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        inner = _inner_width(width, opts)
        bias = opts.conv_bias
        self.bn1 = opts.norm(in_channels)
        self.relu = opts.act(opts.normalized)  # without a norm, act(x) in place would clobber x
        self.conv1 = conv(in_channels, inner, 1, bias=bias)
        self.bn2 = opts.norm(inner)
        self.conv2 = conv(inner, inner, 3, stride, opts.groups, bias=bias)
        self.bn3 = opts.norm(inner)
        self.conv3 = conv(inner, self.out_channels, 1, bias=bias)
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.conv3,)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.shortcut.forward(out, x, pre)
