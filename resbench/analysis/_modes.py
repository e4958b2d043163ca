"""Norm-layer modes shared by the analyses that run a net at initialisation or off its weights."""
from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def batch_statistics(model: nn.Module) -> nn.Module:
    """``model`` in eval mode except its batch norms, which normalise by the batch's statistics
    (as in training), so dropout and stochastic depth stay off. Returns ``model``."""
    model.eval()
    for module in model.modules():
        if isinstance(module, _BATCH_NORMS):
            module.train()
    return model


@torch.no_grad()
def calibrated(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode whose batch norms hold exactly the statistics of batch
    ``x``, so that samples are processed independently (for per-example input gradients)."""
    model = copy.deepcopy(model)
    norms = [m for m in model.modules() if isinstance(m, _BATCH_NORMS)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: after one batch, that batch's statistics
    batch_statistics(model)(x)
    return model.eval()


@contextlib.contextmanager
def hooks(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    """Remove every hook in ``handles`` on exit (handles may be appended inside the block)."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
