"""Stems: the layers before the first stage. Each returns its modules under torchvision's names
(conv1, bn1, relu, maxpool), which the network registers as its own children, in order."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from resbench.blocks.layers import ActFactory, NormFactory, conv
from resbench.registry import Registry


@dataclass(frozen=True)
class Stem:
    """A stem's modules (applied in order) and its output channels and spatial reduction."""

    modules: dict[str, nn.Module]
    out_channels: int
    reduction: int


StemFactory = Callable[..., Stem]
STEMS: Registry[StemFactory] = Registry("stem")


def _finish(modules: dict[str, nn.Module], width: int, norm: NormFactory, act: ActFactory,
            activate: bool) -> None:
    if activate:
        modules["bn1"] = norm(width)
        modules["relu"] = act(True)


@STEMS.register("cifar")
def cifar_stem(in_channels: int, width: int, *, norm: NormFactory, act: ActFactory,
               conv_bias: bool, activate: bool) -> Stem:
    """3x3 conv, stride 1 (+ norm, act), for 32x32 inputs (He et al. 2015, section 4.2)."""
    modules: dict[str, nn.Module] = {"conv1": conv(in_channels, width, 3, bias=conv_bias)}
    _finish(modules, width, norm, act, activate)
    return Stem(modules, width, 1)


@STEMS.register("imagenet")
def imagenet_stem(in_channels: int, width: int, *, norm: NormFactory, act: ActFactory,
                  conv_bias: bool, activate: bool) -> Stem:
    """7x7 conv stride 2 (+ norm, act), 3x3 max-pool stride 2: torchvision's stem."""
    modules: dict[str, nn.Module] = {"conv1": conv(in_channels, width, 7, 2, bias=conv_bias)}
    _finish(modules, width, norm, act, activate)
    modules["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return Stem(modules, width, 4)


@STEMS.register("deep")
def deep_stem(in_channels: int, width: int, *, norm: NormFactory, act: ActFactory,
              conv_bias: bool, activate: bool, widths: tuple[int, ...] | None = None) -> Stem:
    """Three 3x3 convs (``widths``, default width/2, width/2, width; the first with stride 2)
    (+ norm, act), then a 3x3 max-pool stride 2: ResNet-C, laid out as timm's resnet*d
    ``conv1`` Sequential (timm's resnet*d use widths 32, 32, 64)."""
    if widths is None:
        if width % 2:
            raise ValueError(f"the deep stem needs an even width, got {width}")
        widths = (width // 2, width // 2, width)
    if len(widths) != 3 or widths[-1] != width:
        raise ValueError(f"the deep stem needs three widths ending in {width}, got {widths}")
    a, b, _ = widths
    modules: dict[str, nn.Module] = {"conv1": nn.Sequential(
        conv(in_channels, a, 3, 2, bias=conv_bias), norm(a), act(True),
        conv(a, b, 3, bias=conv_bias), norm(b), act(True),
        conv(b, width, 3, bias=conv_bias),
    )}
    _finish(modules, width, norm, act, activate)
    modules["maxpool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    return Stem(modules, width, 4)


@STEMS.register("conv3x3")
def conv3x3_stem(in_channels: int, width: int, *, norm: NormFactory, act: ActFactory,
                 conv_bias: bool, activate: bool) -> Stem:
    """One 3x3 conv stride 2 (+ norm, act): RegNet's stem (torchvision's ``SimpleStemIN``)."""
    modules: dict[str, nn.Module] = {"conv1": conv(in_channels, width, 3, 2, bias=conv_bias)}
    _finish(modules, width, norm, act, activate)
    return Stem(modules, width, 2)
