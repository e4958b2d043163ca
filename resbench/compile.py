"""The compiler: ``build(spec) -> ResNet`` (a pure function of the spec) and ``cost(spec)``
(parameters, MACs and activation memory, counted on the meta device without allocating weights).
Both walk the same plan (``resbench.plan.plan(spec)``): the network builds every unit's modules
in order; the cost measures each distinct unit once (memoised) and counts it ``unit.count`` times.

Module names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer{i}.{j}``,
``avgpool``, ``fc``), so torchvision state_dicts load with ``strict=True``.
"""
from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from resbench._compat.torch import TorchDispatchMode, fresh_outputs
from resbench.blocks import IncompatibleOptions, IncompatibleShapes, ResidualBlock
from resbench.plan import HEAD, STEM, UnitKind, parts, plan
from resbench.spec import Spec, load_spec


class ResNet(nn.Module):
    """A network compiled from a :class:`Spec`: stem, ``layer1``..``layerN`` of residual blocks,
    (``final_norm`` + ``final_act`` for pre-activation nets), ``avgpool``, ``flatten``,
    (``dropout``), ``fc``. The modules are those of ``resbench.plan.plan(spec)``, built in its
    order; the forward applies the children in that order.

    ``initialize=False`` skips torchvision's weight init (for modules built on the meta device,
    where there are no values to initialise).
    """

    def __init__(self, spec: Spec, *, initialize: bool = True) -> None:
        super().__init__()
        self.spec = spec
        stage_names = []
        for part, units in parts(plan(spec)):
            modules = {name: module for unit in units for k in range(unit.count)
                       for name, module in unit.build(k).items()}
            if units[0].stacked:
                stage_names.append(part)
                self.add_module(part, nn.Sequential(OrderedDict(modules)))
            else:
                for name, module in modules.items():
                    self.add_module(name, module)
        self.stage_names: tuple[str, ...] = tuple(stage_names)
        if initialize:
            _init_weights(self, spec.zero_init_residual)

    def forward(self, x: Tensor) -> Tensor:
        for module in self._modules.values():
            x = module(x)
        return x

    def blocks(self) -> list[tuple[str, ResidualBlock]]:
        """Every residual block as ``("layer{i}.{j}", block)``, in forward order."""
        return [(f"{stage}.{j}", block) for stage in self.stage_names
                for j, block in enumerate(getattr(self, stage))]

    def parts(self) -> list[tuple[str, list[nn.Module]]]:
        """The children grouped as ``stem``, ``layer1``..``layerN``, ``head``, in forward order."""
        groups: list[tuple[str, list[nn.Module]]] = [(STEM, [])]
        for name, module in self.named_children():
            if name in self.stage_names:
                groups.append((name, [module]))
            elif groups[-1][0] in (STEM, HEAD):
                groups[-1][1].append(module)
            else:
                groups.append((HEAD, [module]))
        return groups


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """torchvision's init: He-normal (fan_out) convs, norms at weight 1 / bias 0; optionally zero
    the last norm of every residual branch so each block starts as its shortcut."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, ResidualBlock):
                m.zero_init_last()


def _as_spec(spec_or_path: Spec | str | Path) -> Spec:
    if isinstance(spec_or_path, Spec):
        return spec_or_path
    if isinstance(spec_or_path, (str, Path)):
        return load_spec(spec_or_path)
    raise TypeError(f"expected a Spec or a spec file path, got {type(spec_or_path).__name__}")


def build(spec_or_path: Spec | str | Path, *, device: str | torch.device | None = None) -> ResNet:
    """The network a spec describes, freshly initialised (on ``device`` if given)."""
    model = ResNet(_as_spec(spec_or_path))
    return model.to(device) if device is not None else model


@dataclass(frozen=True)
class StageCost:
    """One part of the network (``stem``, ``layer{i}``, ``head``) at the costed input size."""

    name: str
    blocks: int
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class Cost:
    """What a spec costs for one forward pass of ``batch_size`` images of ``input_size``².

    ``macs`` are multiply-accumulates of convolutions and linear layers, i.e. half the FLOPs that
    ``torch.utils.flop_counter.FlopCounterMode`` reports; ``activation_bytes`` is the memory of
    every tensor the forward pass allocates (views and in-place results excluded), an upper bound
    on what training keeps for the backward pass. The ``stages`` entries sum to the totals.
    """

    params: int
    macs: int
    activation_bytes: int
    stages: list[StageCost]
    input_size: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _AllocatedBytes(TorchDispatchMode):
    """Counts the bytes of every fresh tensor an op returns (not views, not in-place results)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        self.total += sum(t.numel() * t.element_size() for t in fresh_outputs(func, out))
        return out


CACHE_SIZE = 32768  # (unit kind, input shape, dtype) measurements _measure keeps, ~1 KB each


def cost(spec_or_path: Spec | str | Path, input_size: int | None = None,
         batch_size: int = 1) -> Cost:
    """Parameters, MACs (= FLOPs / 2) and activation bytes of a spec, per part and in total, at
    ``input_size`` (default: the spec's), counted on the meta device: no weights are allocated.

    Each unit of the plan is measured once per distinct (kind, input shape) on a real module
    (memoised, :data:`CACHE_SIZE` entries) and counted ``unit.count`` times; the forward of the
    network is the forward of its units in order, so the sums equal one count of the whole
    network (``_cost_whole_model``, which a property test holds this to)."""
    spec = _as_spec(spec_or_path)
    size = input_size or spec.input_size
    shape: tuple[int, ...] = (batch_size, spec.input_channels, size, size)
    dtype = torch.get_default_dtype()
    stages: list[StageCost] = []
    total_params = total_flops = total_bytes = 0
    for part, units in parts(plan(spec)):
        params = flops = allocated = blocks = 0
        for unit in units:
            try:
                measured = _measure(unit.kind, shape, dtype)
            except (IncompatibleShapes, IncompatibleOptions):
                with unit.located():  # the spec layer should have refused it: say where
                    raise
            params += unit.count * measured.params
            flops += unit.count * measured.flops
            allocated += unit.count * measured.allocated
            blocks += unit.count if unit.stacked else 0
            shape = measured.output_shape
        stages.append(StageCost(name=part, blocks=blocks, output_shape=shape, params=params,
                                macs=flops // 2, activation_bytes=allocated))
        total_params += params
        total_flops += flops
        total_bytes += allocated
    return Cost(params=total_params, macs=total_flops // 2, activation_bytes=total_bytes,
                stages=stages, input_size=size)


@dataclass(frozen=True)
class _Measured:
    params: int
    flops: int
    allocated: int
    output_shape: tuple[int, ...]


@functools.lru_cache(maxsize=CACHE_SIZE)
def _measure(kind: UnitKind, input_shape: tuple[int, ...], dtype: torch.dtype) -> _Measured:
    """One module of ``kind`` built on the meta device and run in eval mode on an input of
    ``input_shape`` (``dtype``: torch's default, which parameters and activations take): its
    parameters, FLOPs, fresh-tensor bytes and output shape."""
    with torch.device("meta"):
        built = kind.build()
        module = built if isinstance(built, nn.Module) else nn.Sequential(OrderedDict(built))
    module.eval()
    _stand_in_for_norms(module)
    flops, allocated = FlopCounterMode(display=False), _AllocatedBytes()
    x = torch.empty(input_shape, device="meta", dtype=dtype)
    with torch.no_grad(), flops, allocated:
        y = module(x)
    return _Measured(params=sum(p.numel() for p in module.parameters()),
                     flops=flops.get_total_flops(), allocated=allocated.total,
                     output_shape=tuple(y.shape))


def _stand_in_for_norms(model: nn.Module) -> None:
    """Norm layers run as slow Python decompositions on the meta device (~2 ms a call); they
    count no MACs and return a tensor of their input's shape, so a copy stands in for them."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            module.forward = torch.clone


def _cost_whole_model(spec_or_path: Spec | str | Path, input_size: int | None = None,
         batch_size: int = 1) -> Cost:
    """:func:`cost` counted on one forward of the whole network built on the meta device: the
    reference the per-unit count must equal (used by tests and ``benchmarks/bench_cost.py``)."""
    spec = _as_spec(spec_or_path)
    size = input_size or spec.input_size
    with torch.device("meta"):
        model = ResNet(spec, initialize=False)
    model.eval()
    _stand_in_for_norms(model)
    flops, allocated = FlopCounterMode(display=False), _AllocatedBytes()
    parts = model.parts()
    starts: dict[str, tuple[int, int]] = {}
    stages: list[StageCost] = []
    hooks = []
    for name, modules in parts:
        def start(module: nn.Module, args: Any, name: str = name) -> None:
            starts[name] = (flops.get_total_flops(), allocated.total)

        def end(module: nn.Module, args: Any, output: Tensor, name: str = name,
                modules: list[nn.Module] = modules) -> None:
            f0, b0 = starts[name]
            stages.append(StageCost(
                name=name,
                blocks=len(modules[0]) if name in model.stage_names else 0,
                output_shape=tuple(output.shape),
                params=sum(p.numel() for m in modules for p in m.parameters()),
                macs=(flops.get_total_flops() - f0) // 2,
                activation_bytes=allocated.total - b0,
            ))

        hooks.append(modules[0].register_forward_pre_hook(start))
        hooks.append(modules[-1].register_forward_hook(end))
    x = torch.empty(batch_size, spec.input_channels, size, size, device="meta")
    with torch.no_grad(), flops, allocated:
        model(x)
    for hook in hooks:
        hook.remove()
    return Cost(
        params=sum(p.numel() for p in model.parameters()),
        macs=flops.get_total_flops() // 2,
        activation_bytes=allocated.total,
        stages=stages,
        input_size=size,
    )
