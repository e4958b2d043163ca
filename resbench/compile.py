"""The compiler: ``build(spec) -> ResNet`` (a pure function of the spec) and ``cost(spec)``
(parameters, MACs and activation memory, counted on the meta device without allocating weights).
Both walk the same plan (``resbench.plan.plan(spec)``): the network builds every unit's modules
in order; the cost measures each distinct unit once (memoised, as ``unit.kind.costed()``: values
that change no count at their defaults) and counts it ``unit.count`` times.

Module names follow torchvision (``conv1``, ``bn1``, ``relu``, ``maxpool``, ``layer{i}.{j}``,
``avgpool``, ``fc``), so torchvision state_dicts load with ``strict=True``.
"""
from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from resbench._compat.torch import (
    TorchDispatchMode,
    device_constructors,
    flop_formula,
    fresh_outputs,
)
from resbench.blocks import IncompatibleOptions, IncompatibleShapes, ResidualBlock, shared_layers
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
            _init_weights(self, spec.zero_init_residual, spec.normfree)

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


def _init_weights(model: nn.Module, zero_init_residual: bool, normfree: str = "none") -> None:
    """torchvision's init: He-normal (fan_out) convs, norms at weight 1 / bias 0; optionally zero
    the last norm of every residual branch so each block starts as its shortcut; with Fixup,
    its rescaled branches and a zero classifier."""
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
    if normfree == "fixup":
        blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
        for m in blocks:
            m.fixup_init(len(blocks))
        nn.init.zeros_(model.fc.weight)
        nn.init.zeros_(model.fc.bias)


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
OP_CACHE_SIZE = 65536  # (op, argument shapes) outcomes _Counter keeps, ~0.5 KB each
LAYER_CACHE_SIZE = 4096  # meta layers (convs, norms) that the units _measure builds share


def cost(spec_or_path: Spec | str | Path, input_size: int | None = None,
         batch_size: int = 1) -> Cost:
    """Parameters, MACs (= FLOPs / 2) and activation bytes of a spec, per part and in total, at
    ``input_size`` (default: the spec's), counted on the meta device: no weights are allocated.

    Each unit of the plan is measured once per distinct (``kind.costed()``, input shape) on a
    real module (memoised, :data:`CACHE_SIZE` entries; the ops it runs and the layers it is
    built of are memoised too, see :class:`_Counter` and ``_LAYERS``) and counted
    ``unit.count`` times; the forward of the network is the forward of its units in order, so
    the sums equal one count of the whole network (``_cost_whole_model``, which a property
    test holds this to)."""
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
                measured = _measure(unit.kind.costed(), shape, dtype)
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
    with _OnMeta(), shared_layers(_LAYERS, on_new=_shared_layer):
        built = kind.build()
        module = built if isinstance(built, nn.Module) else nn.Sequential(OrderedDict(built))
    while len(_LAYERS) > LAYER_CACHE_SIZE:
        _LAYERS.popitem(last=False)
    module.eval()
    _stand_in_for_norms(module)
    counter = _Counter()
    x = torch.empty(input_shape, device="meta", dtype=dtype)
    token = _COUNTING.set(counter)
    try:
        with torch.no_grad(), counter:
            y = module(x)
    finally:
        _COUNTING.reset(token)
    return _Measured(params=sum(p.numel() for p in module.parameters()),
                     flops=counter.flops, allocated=counter.allocated,
                     output_shape=tuple(y.shape))


# The convs and norms that the units _measure builds share (blocks.shared_layers), oldest
# first: at most LAYER_CACHE_SIZE once a unit is built.
_LAYERS: OrderedDict[tuple, nn.Module] = OrderedDict()
_COUNTING: ContextVar[_Counter | None] = ContextVar("resbench_cost_counter", default=None)


def _shared_layer(layer: nn.Module) -> None:
    """Ready a layer that joins ``_LAYERS``: norms copy (see :func:`_stand_in_for_norms`), and
    its forward is replayed per input shape (see :func:`_replay_forward`)."""
    _stand_in_for_norms(layer)
    _replay_forward(layer)


def _replay_forward(layer: nn.Module) -> None:
    """``layer`` runs its forward once per input shape under the unit's :class:`_Counter`; on
    later calls with that shape it adds what that run counted and returns an empty output of
    the shape it returned (a conv or a norm returns a fresh tensor; anything else, a view or
    its input, is never replayed). Half the calls a unit makes are to its shared layers. The
    shapes seen are a layer's few input sizes, and go with it when ``_LAYERS`` drops it."""
    forward = layer.forward
    seen: dict[tuple, _Outcome] = {}

    def replayed(x: Tensor) -> Tensor:
        counter = _COUNTING.get()
        if counter is None:
            return forward(x)
        key = (x.shape, x.stride(), x.dtype)
        hit = seen.get(key)
        if hit is not None:
            return counter.replay(hit)
        flops, allocated = counter.flops, counter.allocated
        y = forward(x)
        if isinstance(y, Tensor) and y is not x:
            made = _Made(tuple(y.shape), y.stride(), y.dtype)
            seen[key] = _Outcome(counter.flops - flops, counter.allocated - allocated, None,
                                 (made,))
        return y

    layer.forward = replayed


_FILLS = frozenset(getattr(nn.init, name) for name in (
    "constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_",
    "orthogonal_", "sparse_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_",
    "zeros_")) | frozenset(getattr(Tensor, name) for name in (
    "fill_", "zero_", "uniform_", "normal_"))


class _OnMeta(TorchFunctionMode):
    """Modules built under it are built on the meta device (as under ``torch.device("meta")``),
    and the filling of a tensor with values (``torch.nn.init``, ``Tensor.fill_``...) is skipped:
    a meta tensor holds no values, and the fills are half the time a layer takes to build."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func in _FILLS:
            target = args[0] if args else kwargs["tensor"]
            if target.device.type == "meta":
                return target
        elif func in device_constructors() and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)


class _Counter(TorchDispatchMode):
    """FLOPs (torch's formulas, applied as torch 2.14's ``FlopCounterMode`` applies them: each op
    is first decomposed where it can be, and counted by the formula of the op that runs) and
    bytes of fresh outputs (as :class:`_AllocatedBytes`) of the ops run under it, with each op's
    outcome memoised in ``_OPS``.

    On the meta device an op's outputs, FLOPs and fresh bytes depend only on the op, its
    arguments' shapes, strides, dtypes and other values, and torch's default dtype (for the
    factories); so the first call of an op with such arguments runs it and every later one (in
    any unit, any ``cost()`` call) makes empty outputs of the recorded shapes instead: torch's
    meta kernels of elementwise ops are Python decompositions (~0.2-0.5 ms a call). An op is
    run every time where an output is a view, not a tensor, or an argument whose shape or
    strides it changed (``unsqueeze_``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0
        self.allocated = 0
        self._inner = 0  # > 0 while an op runs as its decomposition: counted once, above
        self._quiet = False  # while replay() makes outputs

    def replay(self, outcome: _Outcome, args: tuple = ()) -> Any:
        """What ``outcome`` counted, added, and what it returned, made again (the empty outputs
        made here are not counted: they were when the op first ran)."""
        self.flops += outcome.flops
        self.allocated += outcome.allocated
        self._quiet = True
        try:
            return outcome.remake(args)
        finally:
            self._quiet = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if self._quiet:
            return func(*args, **kwargs)
        if self._inner:
            return self._run(func, args, kwargs)
        key = _op_key(func, args, kwargs)
        hit = _OPS.get(key) if key is not None else None
        if hit is not None:
            return self.replay(hit, args)
        flops = self.flops
        out = self._run(func, args, kwargs)
        allocated = sum(t.numel() * t.element_size() for t in fresh_outputs(func, out))
        self.allocated += allocated
        outputs = _outputs(func, out, args, key[1] if key is not None else None)
        if outputs is not None:
            _OPS[key] = _Outcome(self.flops - flops, allocated, *outputs)
            while len(_OPS) > OP_CACHE_SIZE:
                _OPS.popitem(last=False)
        return out

    def _run(self, func: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
        if func is not torch.ops.prim.device.default:
            self._inner += 1
            try:
                with self:
                    out = func.decompose(*args, **kwargs)
            finally:
                self._inner -= 1
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        formula = flop_formula(func)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


class _Made(NamedTuple):
    """One output of a memoised op (or shared layer): a fresh tensor of this shape, stride and
    dtype, or (where ``arg`` is set) that positional argument itself, as an in-place op
    returns it."""

    shape: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    dtype: torch.dtype | None = None
    arg: int | None = None


class _Outcome(NamedTuple):
    """What an op (``_OPS``) or a shared layer's forward (``_replay_forward``) counted and
    returned, to be replayed (:meth:`_Counter.replay`)."""

    flops: int
    allocated: int
    container: type | None  # tuple or list of outputs, or None for a single one
    made: tuple[_Made, ...]

    def remake(self, args: tuple) -> Any:
        values = [args[m.arg] if m.arg is not None else
                  torch.empty_strided(m.shape, m.stride, dtype=m.dtype, device="meta")
                  for m in self.made]
        return values[0] if self.container is None else self.container(values)


# Op outcomes by _op_key, oldest first: at most OP_CACHE_SIZE.
_OPS: OrderedDict[tuple, _Outcome] = OrderedDict()


def _op_key(func: Any, args: tuple, kwargs: dict[str, Any]) -> tuple | None:
    """What an op's outcome on meta tensors depends on, hashable; None if some argument is not
    a tensor, a number, a string, a dtype-like constant or a sequence of those."""
    try:
        key = (func, _arg_key(args), _arg_key(tuple(sorted(kwargs.items()))),
               torch.get_default_dtype())
        hash(key)
    except TypeError:
        return None
    return key


_PLAIN = frozenset((int, float, bool, str, type(None), torch.dtype, torch.memory_format,
                    torch.layout, torch.device))


def _arg_key(value: Any) -> Any:
    """``value`` as a key: a meta tensor by its metadata, a scalar with its type (1, 1.0 and
    True are equal in Python, not to an op), sequences item by item."""
    kind = type(value)
    if kind in _PLAIN:
        return (kind, value)
    if isinstance(value, Tensor):
        if not value.is_meta:
            raise TypeError("only meta tensors are memoised")
        return (Tensor, value.shape, value.stride(), value.storage_offset(), value.dtype,
                value.requires_grad)
    if kind is tuple or kind is list or kind is torch.Size:
        return (kind, *[_arg_key(v) for v in value])
    raise TypeError(f"{kind.__name__} arguments are not memoised")


def _outputs(func: Any, out: Any, args: tuple,
             args_key: tuple | None) -> tuple[type | None, tuple[_Made, ...]] | None:
    """How to make ``out`` again from the arguments, or None where it cannot be memoised: no
    key, an output that is a view or not a tensor, or an argument that the op reshaped in place
    (its metadata differ from ``args_key``'s, taken before the op ran)."""
    if args_key is None:
        return None
    results = out if isinstance(out, (tuple, list)) else (out,)
    if len(results) != len(func._schema.returns):
        return None
    made: list[_Made] = []
    fresh = {id(t) for t in fresh_outputs(func, out)}
    for value in results:
        if not isinstance(value, Tensor):
            return None
        if id(value) in fresh:
            made.append(_Made(tuple(value.shape), value.stride(), value.dtype))
            continue
        same = [i for i, arg in enumerate(args) if arg is value]
        if not same or _arg_key(value) != args_key[1 + same[0]]:
            return None  # a view of an argument, or an argument reshaped in place
        made.append(_Made(arg=same[0]))
    return (type(out) if isinstance(out, (tuple, list)) else None), tuple(made)


def _clear_memos() -> None:
    """Forget every measurement (units, ops, shared layers): as in a fresh process."""
    _measure.cache_clear()
    _OPS.clear()
    _LAYERS.clear()


def _stand_in_for_norms(model: nn.Module) -> None:
    """Norm layers run as slow Python decompositions on the meta device (~2 ms a call); they
    count no MACs and return a tensor of their input's shape, so a copy stands in for them
    (where no other forward stands in already: a shared layer's, see :func:`_replay_forward`)."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and "forward" not in module.__dict__:
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
