"""Signal propagation at initialisation (Brock et al. 2021, "signal propagation plots").

Per block output x (N, C, H, W): the mean over channels of the squared channel mean,
mean_c (mean_{N,H,W} x)^2, and the mean over channels of the channel variance,
mean_c var_{N,H,W} x. Batch norms use the batch's statistics, as in training.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from resbench.analysis._modes import batch_statistics, hooks
from resbench.store import SignalResult, SignalRow


def channel_stats(x: torch.Tensor) -> tuple[float, float]:
    """(mean squared channel mean, average channel variance) of activations ``x`` (N, C, ...)."""
    dims = [0, *range(2, x.dim())]
    x = x.detach().double()
    return (float(x.mean(dim=dims).pow(2).mean()),
            float(x.var(dim=dims, unbiased=False).mean()))


@torch.no_grad()
def signal_propagation(model: nn.Module, x: torch.Tensor) -> SignalResult:
    """Per-block statistics of a copy of ``model`` on batch ``x`` (``model`` is left unchanged)."""
    model = batch_statistics(copy.deepcopy(model))
    rows: list[SignalRow] = []
    handles: list = []

    def record(name: str, index: int):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            mean_sq, var = channel_stats(output)
            rows.append(SignalRow(block=name, index=index, mean_sq_channel_mean=mean_sq,
                                         channel_variance=var))
        return hook

    with hooks(handles):
        for i, (name, block) in enumerate(model.blocks()):
            handles.append(block.register_forward_hook(record(name, i)))
        model(x)
    return SignalResult(examples=int(x.shape[0]), rows=rows)
