"""The compiler: ``build(spec) -> ResNet`` (a pure function of the spec) and ``cost(spec)``
(parameters, MACs and activation memory, counted on the meta device without allocating weights).

Module names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer{i}.{j}``,
``avgpool``, ``fc``), so torchvision state_dicts load with ``strict=True``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from resbench._compat.torch import TorchDispatchMode, fresh_outputs
from resbench.blocks import (
    ACTIVATIONS,
    BLOCKS,
    NORMS,
    STEMS,
    BlockOptions,
    IncompatibleOptions,
    IncompatibleShapes,
    ResidualBlock,
)
from resbench.errors import SpecError
from resbench.spec import Spec, StageSpec, load_spec

STEM, HEAD = "stem", "head"


class ResNet(nn.Module):
    """A network compiled from a :class:`Spec`: stem, ``layer1``..``layerN`` of residual blocks,
    (``final_norm`` + ``final_act`` for pre-activation nets), ``avgpool``, ``flatten``,
    (``dropout``), ``fc``. The forward applies the children in that order.

    ``initialize=False`` skips torchvision's weight init (``cost`` builds on the meta device,
    where there are no values to initialise).
    """

    def __init__(self, spec: Spec, *, initialize: bool = True) -> None:
        super().__init__()
        self.spec = spec
        norm, act = NORMS.get(spec.norm), ACTIVATIONS.get(spec.activation)
        kinds = [BLOCKS.get(stage.block) for stage in spec.stages]
        stem = STEMS.get(spec.stem.kind)(
            spec.input_channels, spec.stem.width, norm=norm, act=act,
            conv_bias=spec.norm == "none", activate=not kinds[0].preact)
        for name, module in stem.modules.items():
            self.add_module(name, module)

        channels = stem.out_channels
        total = sum(stage.depth for stage in spec.stages)
        done = 0
        self.stage_names: tuple[str, ...] = tuple(f"layer{i + 1}" for i in range(len(spec.stages)))
        for i, (stage, kind) in enumerate(zip(spec.stages, kinds)):
            opts = _block_options(spec, stage)
            blocks = []
            for j in range(stage.depth):
                done += 1
                drop = spec.stochastic_depth * done / total  # linear decay rule (Huang et al.)
                try:
                    block = kind(channels, stage.width, stage.stride if j == 0 else 1,
                                 dataclasses.replace(opts, drop_path=drop))
                except (IncompatibleShapes, IncompatibleOptions) as exc:
                    raise SpecError(f"block {j}: {exc}", path=f"stages[{i}]") from None
                blocks.append(block)
                channels = block.out_channels
            self.add_module(self.stage_names[i], nn.Sequential(*blocks))

        if kinds[-1].preact:
            self.final_norm = norm(channels)
            self.final_act = act(True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten(1)
        if spec.head.dropout > 0:
            self.dropout = nn.Dropout(spec.head.dropout)
        self.fc = nn.Linear(channels, spec.num_classes)
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


def _block_options(spec: Spec, stage: StageSpec) -> BlockOptions:
    return BlockOptions.of(
        shortcut=stage.shortcut,
        norm=spec.norm,
        activation=spec.activation,
        groups=stage.groups,
        width_per_group=stage.width_per_group,
        expansion=stage.expansion,
        se_ratio=stage.se_ratio,
        **stage.shortcut_options(),
    )


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


def cost(spec_or_path: Spec | str | Path, input_size: int | None = None,
         batch_size: int = 1) -> Cost:
    """Parameters, MACs (= FLOPs / 2) and activation bytes of a spec, per part and in total, at
    ``input_size`` (default: the spec's), counted on the meta device: no weights are allocated."""
    spec = _as_spec(spec_or_path)
    size = input_size or spec.input_size
    with torch.device("meta"):
        model = ResNet(spec, initialize=False)
    model.eval()
    for module in model.modules():
        # Norm layers run as slow Python decompositions on the meta device (~2 ms a call); they
        # count no MACs and return a tensor of their input's shape, so a copy stands in for them.
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
            module.forward = torch.clone
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
