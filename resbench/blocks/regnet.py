"""RegNet's block (Radosavovic et al. 2020), laid out as torchvision's ``ResBottleneckBlock``:
the residual bottleneck with grouped 3x3 convs of a fixed group width, and, in RegNet-Y, a
squeeze-and-excitation sized from the block's input and placed before the last 1x1."""
from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from resbench.blocks.layers import SqueezeExcite, conv
from resbench.blocks.residual import BlockOptions, IncompatibleOptions, ResidualBlock, _basic_only


class RegNetBlock(ResidualBlock):
    """y = act(shortcut(F(x), x)), F = bn3(conv3(se(act(bn2(conv2(act(bn1(conv1(x))))))))):
    1x1 to w_b = round(width · bottleneck_ratio), 3x3 (stride) in w_b / group_width groups,
    SE to round(se_ratio · in_channels) channels (RegNet-Y), 1x1 to width (expansion 1)."""

    kind = "regnet"

    def __init__(self, in_channels: int, width: int, stride: int, opts: BlockOptions) -> None:
        super().__init__(in_channels, width, stride, opts)
        _basic_only(opts, "regnet")
        inner = round(width * self._option(opts, "bottleneck_ratio"))
        group_width = self._option(opts, "group_width")
        if inner < 1 or inner % group_width:
            raise IncompatibleOptions(f"a regnet block's inner width {inner} must be a positive "
                                      f"multiple of group_width {group_width}")
        bias = opts.conv_bias
        self.conv1 = conv(in_channels, inner, 1, bias=bias)
        self.bn1 = opts.norm(inner)
        self.relu = opts.act(True)
        self.conv2 = conv(inner, inner, 3, stride, inner // group_width, bias=bias)
        self.bn2 = opts.norm(inner)
        self.conv3 = conv(inner, self.out_channels, 1, bias=bias)
        self.bn3 = opts.norm(self.out_channels)
        self._attach_tail(dataclasses.replace(opts, se_ratio=0.0))
        if opts.se_ratio > 0:
            self.se = SqueezeExcite(inner, opts.se_ratio, opts.act,
                                    reduced=round(opts.se_ratio * in_channels))

    def _branch_end(self) -> tuple[nn.Module, ...]:
        return (self.bn3, self.conv3)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.bn3(self.conv3(out))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return self.relu(self.shortcut.forward(out, x, x))
