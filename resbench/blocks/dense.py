"""Dense connectivity (Huang et al. 2017), laid out as torchvision's ``_DenseLayer`` and
``_Transition``: a dense layer's branch is a pre-activated bottleneck whose ``width`` new
channels the ``concat`` shortcut appends to its input; a transition compresses the channels
with a 1x1 conv and halves the resolution with an average pool."""
from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from resbench.blocks.layers import conv
from resbench.blocks.residual import BlockOptions, IncompatibleOptions, ResidualBlock, _basic_only
from resbench.blocks.shortcuts import NoShortcut


class DenseLayer(ResidualBlock):
    """y = shortcut(F(x), x) (with ``concat``: cat(x, F(x))), F = conv2(act(bn2(conv1(act(
    bn1(x)))))): 1x1 to bn_size · width, 3x3 to width (the growth rate)."""

    kind = "dense"
    preact = True
    bare_stem: ClassVar[bool] = False  # DenseNet's stem is conv, norm, act, pool

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        _basic_only(opts, "dense")
        inner = self._option(opts, "bn_size") * width
        bias = opts.conv_bias
        self.bn1 = opts.norm(in_channels)
        self.relu = opts.act(opts.normalized)  # without a norm, act(x) in place would clobber x
        self.conv1 = conv(in_channels, inner, 1, bias=bias)
        self.bn2 = opts.norm(inner)
        self.conv2 = conv(inner, self.out_channels, 3, stride, bias=bias)
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.conv2,)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.shortcut.forward(out, x, pre)


class Transition(ResidualBlock):
    """y = pool(conv1(act(bn1(x)))): 1x1 conv to ``width`` = int(in · compression) channels
    (resolved by the spec), then a ``stride`` x ``stride`` average pool; no shortcut."""

    kind = "transition"
    preact = True
    bare_stem: ClassVar[bool] = False

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        _basic_only(opts, "transition")
        if opts.shortcut is not NoShortcut:
            raise IncompatibleOptions(f"a transition has no shortcut (shortcut none), not "
                                      f"{opts.shortcut.name!r}")
        self.bn1 = opts.norm(in_channels)
        self.relu = opts.act(opts.normalized)
        self.conv1 = conv(in_channels, self.out_channels, 1, bias=opts.conv_bias)
        self.pool = nn.AvgPool2d(stride, stride) if stride > 1 else nn.Identity()
        self._attach_tail(opts)

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.conv1,)

    def zero_init_last(self) -> None:
        """Nothing: a transition is not a residual branch, zeroing it would cut the net."""

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.pool(self.conv1(pre))
        if self.se is not None:
            out = self.se(out)
        return self.shortcut.forward(out, x, pre)
