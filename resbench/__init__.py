"""resbench: residual networks as data — specs, a compiler, a benchmark runner, search, reports.

Public names are imported on first use, so ``import resbench`` stays fast and pulls in neither
torch nor ray, optuna or matplotlib.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Spec": "resbench.spec",
    "load_spec": "resbench.spec",
    "parse_spec": "resbench.spec",
    "SpecError": "resbench.errors",
    "UserError": "resbench.errors",
    "build": "resbench.compile",
    "cost": "resbench.compile",
    "Cost": "resbench.compile",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
