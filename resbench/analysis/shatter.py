"""Shattered gradients (Balduzzi et al. 2017): at initialisation, how correlated the gradient of
the output with respect to the input is at neighbouring points of a line of inputs.

After each block, a fixed random readout s = <u, h(x)> of the block's output h; its gradient
g(x) = ds/dx at points x_0..x_{n-1} evenly spaced on a line; the measure is the mean Pearson
correlation of g(x_t) and g(x_{t+1}) (1: smooth, as in a shallow net; near 0: shattered, like
white noise). Batch norms hold the statistics of a calibration batch, so examples do not mix.
"""
from __future__ import annotations

import torch
from torch import nn

from resbench.analysis._modes import calibrated, hooks
from resbench.store import ShatterResult, ShatterRow


def line_between(a: torch.Tensor, b: torch.Tensor, points: int) -> torch.Tensor:
    """``points`` inputs evenly spaced from ``a`` to ``b`` (both ends included), stacked."""
    t = torch.linspace(0.0, 1.0, points, dtype=a.dtype, device=a.device)
    return a.unsqueeze(0) + t.view(-1, *([1] * a.dim())) * (b - a).unsqueeze(0)


def gradient_correlation(grads: torch.Tensor) -> float:
    """Mean Pearson correlation of consecutive rows of ``grads`` (n, ...), flattened."""
    g = grads.detach().double().flatten(1)
    g = g - g.mean(dim=1, keepdim=True)
    norms = g.norm(dim=1)
    dots = (g[:-1] * g[1:]).sum(dim=1)
    denom = norms[:-1] * norms[1:]
    valid = denom > 0
    if not bool(valid.any()):
        return float("nan")
    return float((dots[valid] / denom[valid]).mean())


def shattered_gradients(model: nn.Module, line: torch.Tensor, calibration: torch.Tensor, *,
                        seed: int = 0) -> ShatterResult:
    """Per-block gradient correlation of ``model`` along ``line`` (points, C, H, W), its batch
    norms calibrated on ``calibration``; ``model`` is left unchanged."""
    net = calibrated(model, calibration)
    for p in net.parameters():
        p.requires_grad_(False)
    x = line.detach().clone().requires_grad_(True)
    outputs: list[tuple[str, torch.Tensor]] = []
    handles: list = []
    with hooks(handles):
        for name, block in net.blocks():
            handles.append(block.register_forward_hook(
                lambda m, i, out, name=name: outputs.append((name, out))))
        logits = net(x)
    generator = torch.Generator().manual_seed(seed)
    rows: list[ShatterRow] = []
    output = None
    readouts = [*outputs, ("output", logits)]
    for index, (name, out) in enumerate(readouts):
        u = torch.randn(out.shape[1:], generator=generator, dtype=out.dtype).to(out.device)
        (grad,) = torch.autograd.grad((out * u).sum(), x, retain_graph=index < len(readouts) - 1)
        corr = gradient_correlation(grad)
        if name == "output":
            output = corr
        else:
            rows.append(ShatterRow(block=name, index=index, correlation=corr))
    return ShatterResult(points=int(line.shape[0]), rows=rows, output_correlation=output)
