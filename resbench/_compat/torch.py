"""torch's dispatch-level hook (``torch.utils._python_dispatch.TorchDispatchMode``) and an op's
schema (``OpOverload._schema``).

Why: ``resbench.compile.cost`` counts the bytes of every tensor a forward pass allocates; that
needs a hook below autograd that sees each op with its outputs, which torch offers only as this
private mode (torch's own ``FlopCounterMode`` is built on it), and telling a fresh output from a
view or an in-place result needs the op's schema (``returns[i].alias_info``). Checked by
``tests/test_compat.py``; tested with torch 2.3-2.14.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TorchDispatchMode", "fresh_outputs"]


def fresh_outputs(func: Any, out: Any) -> Iterator[Tensor]:
    """The tensors op ``func`` returned in ``out`` that are new memory (not views or in-place)."""
    results = out if isinstance(out, (tuple, list)) else (out,)
    for ret, value in zip(func._schema.returns, results):
        if isinstance(value, Tensor) and ret.alias_info is None:
            yield value
