"""torch's dispatch-level hook (``torch.utils._python_dispatch.TorchDispatchMode``), an op's
schema (``OpOverload._schema``) and the FLOP formulas of ``torch.utils.flop_counter``.

Why: ``resbench.compile.cost`` counts the bytes of every tensor a forward pass allocates; that
needs a hook below autograd that sees each op with its outputs, which torch offers only as this
private mode (torch's own ``FlopCounterMode`` is built on it), and telling a fresh output from a
view or an in-place result needs the op's schema (``returns[i].alias_info``). ``cost`` counts
FLOPs in the same mode, which also memoises each op, with the formulas ``FlopCounterMode``
applies: they sit in ``torch.utils.flop_counter.flop_registry`` (keyed by op packet, each taking
the op's arguments and ``out_val``), which torch does not document. And ``cost`` builds its
modules on the meta device in a function mode of its own, which also skips filling tensors, so
it needs the factory functions ``torch.device("meta")`` redirects
(``torch.utils._device._device_constructors``). Checked by ``tests/test_compat.py``; the dispatch
mode and the schema were tested with torch 2.3-2.14, the formulas and factories with 2.14 (torch's
``FlopCounterMode`` decomposes ops before counting them since 2.6; ``cost`` does as 2.14 does).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._device import _device_constructors
from torch.utils.flop_counter import flop_registry

__all__ = ["TorchDispatchMode", "device_constructors", "flop_formula", "fresh_outputs"]


def device_constructors() -> Any:
    """The torch functions that take a ``device=`` and make a tensor (``torch.empty``,
    ``torch.zeros``...): those a ``with torch.device(...)`` block sends to its device."""
    return _device_constructors()


def flop_formula(func: Any) -> Any:
    """torch's FLOP formula for op ``func`` (``formula(*args, **kwargs, out_val=out) -> int``), the
    one ``FlopCounterMode`` applies, or None where it has none (the op counts no FLOPs, or
    ``FlopCounterMode`` decomposes it into ops that have one)."""
    return flop_registry.get(func._overloadpacket)


def fresh_outputs(func: Any, out: Any) -> Iterator[Tensor]:
    """The tensors op ``func`` returned in ``out`` that are new memory (not views or in-place)."""
    results = out if isinstance(out, (tuple, list)) else (out,)
    for ret, value in zip(func._schema.returns, results):
        if isinstance(value, Tensor) and ret.alias_info is None:
            yield value
