"""Training and measuring: recipe → optimizer and schedule, one trial's loop, the gradient-flow
probe, transfer learning, and suites of trials run into the results store.

Names load on first use, so ``resbench bench --help`` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "run_trial": "resbench.train.trial",
    "trial_identity": "resbench.train.trial",
    "adapt_spec": "resbench.train.trial",
    "load_data": "resbench.train.trial",
    "DataCache": "resbench.train.datacache",
    "Suite": "resbench.train.suite",
    "load_suite": "resbench.train.suite",
    "load_target": "resbench.train.suite",
    "run_suite": "resbench.train.suite",
    "LRSchedule": "resbench.train.optim",
    "make_optimizer": "resbench.train.optim",
    "GradFlowProbe": "resbench.train.probe",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'resbench.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
