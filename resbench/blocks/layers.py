"""Small layers shared by stems, blocks and shortcuts: convolutions, the norm and activation
registries, squeeze-and-excitation and stochastic depth (DropPath)."""
from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from resbench.registry import Registry

NormFactory = Callable[[int], nn.Module]
ActFactory = Callable[[bool], nn.Module]

NORMS: Registry[NormFactory] = Registry("norm")
ACTIVATIONS: Registry[ActFactory] = Registry("activation")

GROUP_NORM_GROUPS = 32

F = TypeVar("F", bound=Callable[..., nn.Module])
_SHARED: ContextVar[tuple[MutableMapping[tuple, nn.Module], Callable[[nn.Module], None] | None,
                          Counter[tuple]] | None] = ContextVar("resbench_shared_layers",
                                                               default=None)


@contextmanager
def shared_layers(pool: MutableMapping[tuple, nn.Module],
                  on_new: Callable[[nn.Module], None] | None = None) -> Iterator[None]:
    """While active, the layer factories marked :func:`shareable` (``conv`` and the norms) take
    their modules from ``pool``: a call with the arguments (and torch default dtype) of an
    earlier one, in an earlier ``with``, returns that call's module; a new one is built, passed
    to ``on_new`` and added. Within one ``with`` a repeated call (a block's two equal convs)
    gets a module of its own per repeat, so no module is in two places of what is built there
    and code that walks a block's modules sees each place.

    For ``resbench.compile.cost``, which builds thousands of blocks on the meta device only to
    count them, and for which building their layers again is most of the time; never while
    building a network to train, whose layers must be its own."""
    token = _SHARED.set((pool, on_new, Counter()))
    try:
        yield
    finally:
        _SHARED.reset(token)


def shareable(factory: F) -> F:
    """A layer factory whose calls may return a module from a pool (see :func:`shared_layers`)."""

    @functools.wraps(factory)
    def make(*args: Any, **kwargs: Any) -> nn.Module:
        shared = _SHARED.get()
        if shared is None:
            return factory(*args, **kwargs)
        pool, on_new, repeats = shared
        call = (factory, args, tuple(sorted(kwargs.items())), torch.get_default_dtype())
        key = (*call, repeats[call])
        repeats[call] += 1
        layer = pool.get(key)
        if layer is None:
            layer = factory(*args, **kwargs)
            if on_new is not None:
                on_new(layer)
            pool[key] = layer
        return layer

    return make  # type: ignore[return-value]


@NORMS.register("batch")
@shareable
def batch_norm(channels: int) -> nn.Module:
    """BatchNorm2d over ``channels``."""
    return nn.BatchNorm2d(channels)


@NORMS.register("group")
@shareable
def group_norm(channels: int) -> nn.Module:
    """GroupNorm with 32 groups, or as many as divide ``channels`` (16 channels -> 16 groups)."""
    return nn.GroupNorm(math.gcd(GROUP_NORM_GROUPS, channels), channels)


@NORMS.register("none")
def no_norm(channels: int) -> nn.Module:
    """No normalisation; convolutions feeding it get their own bias instead."""
    return nn.Identity()


@ACTIVATIONS.register("relu")
def relu(inplace: bool = True) -> nn.Module:
    return nn.ReLU(inplace=inplace)


@ACTIVATIONS.register("gelu")
def gelu(inplace: bool = True) -> nn.Module:
    return nn.GELU()  # has no in-place form


@ACTIVATIONS.register("silu")
def silu(inplace: bool = True) -> nn.Module:
    return nn.SiLU(inplace=inplace)


@shareable
def conv(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
         bias: bool = False) -> nn.Conv2d:
    """A 'same'-padded convolution (torchvision's conv3x3/conv1x1); a bias starts at zero."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                      padding=kernel_size // 2, groups=groups, bias=bias)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class SqueezeExcite(nn.Module):
    """x · σ(fc2(act(fc1(avgpool(x))))), channel attention (Hu et al. 2018), 1x1-conv fcs;
    reduced to ``round(channels * ratio)`` channels, or to ``reduced`` where given (RegNet sizes
    it from the block's input)."""

    def __init__(self, channels: int, ratio: float, act: ActFactory,
                 reduced: int | None = None) -> None:
        super().__init__()
        reduced = max(1, round(channels * ratio) if reduced is None else reduced)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = act(True)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.act(self.fc1(s))))


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, zero a sample's branch with probability p
    and scale survivors by 1/(1-p); the identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


# NF-ResNet's gain for a ReLU's output: 1 / std(relu(z)) for z ~ N(0, 1) (Brock et al. 2021).
RELU_GAMMA = math.sqrt(2.0 / (1.0 - 1.0 / math.pi))


class ScaledStdConv2d(nn.Conv2d):
    """A conv with scaled weight standardisation (Brock et al. 2021): each filter is used as
    gain · gamma · (W − mean(W)) / (std(W) · sqrt(fan_in)), with a learnable per-filter gain
    starting at 1; ``gamma`` undoes the variance change of the activation before it."""

    def __init__(self, *args, gamma: float = 1.0, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1))
        self.gamma, self.eps = gamma, eps

    @classmethod
    def like(cls, layer: nn.Conv2d, gamma: float) -> ScaledStdConv2d:
        """A standardised conv of ``layer``'s shape (fresh weights)."""
        return cls(layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
                   padding=layer.padding, groups=layer.groups, bias=layer.bias is not None,
                   gamma=gamma, device=layer.weight.device)

    def standardized_weight(self) -> Tensor:
        w = self.weight
        fan_in = w[0].numel()
        mean = w.mean((1, 2, 3), keepdim=True)
        var = w.var((1, 2, 3), keepdim=True, unbiased=False)
        return (w - mean) * torch.rsqrt(var * fan_in + self.eps) * (self.gain * self.gamma)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.standardized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, gamma={self.gamma:.4g}"


class BranchGain(nn.Module):
    """F(x) scaled before the merge: by a learnable scalar starting at ``init`` (SkipInit:
    0; Fixup: 1, followed by a learnable scalar bias), or by a constant (NF-ResNet's alpha)."""

    def __init__(self, init: float, *, learnable: bool, bias: bool = False) -> None:
        super().__init__()
        if learnable:
            self.scale = nn.Parameter(torch.full((), float(init)))
        else:
            self.register_buffer("scale", torch.tensor(float(init)), persistent=False)
        self.bias = nn.Parameter(torch.zeros(())) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.scale
        return x if self.bias is None else x + self.bias


class BranchInput(nn.Module):
    """What the branch (and a projecting shortcut) reads: x + a learnable scalar bias (Fixup),
    or x / beta, beta the expected std of x (NF-ResNet)."""

    def __init__(self, *, bias: bool = False, beta: float = 1.0) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(())) if bias else None
        self.inv_beta = 1.0 / beta

    def forward(self, x: Tensor) -> Tensor:
        if self.bias is not None:
            return x + self.bias
        return x * self.inv_beta

    def extra_repr(self) -> str:
        return "bias" if self.bias is not None else f"beta={1.0 / self.inv_beta:.4g}"
