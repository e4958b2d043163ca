"""Loss landscapes: the line from initial to trained weights (Goodfellow et al. 2015) and a
plane around the trained weights along two filter-normalised random directions (Li et al. 2018).

Weights are set on a copy of the model; the loss is whatever ``loss_fn(model)`` measures (for a
trial: cross-entropy on a fixed batch of training images with batch-norm batch statistics, so
the statistics follow the weights). Li et al.'s directions have, for every filter (a row along
dim 0 of a weight with 2+ dims), the norm of the trained filter; biases and norm parameters are
not moved ("ignore biasbn").
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from resbench.store import LandscapeResult, PathPoint

LossFn = Callable[[nn.Module], tuple[float, float | None]]  # model -> (loss, accuracy or None)
State = Mapping[str, torch.Tensor]


def _mix(model: nn.Module, terms: Sequence[tuple[float, State]], base: State) -> None:
    """Set ``model``'s floating tensors to sum(c * state[name]); others (counters) from ``base``."""
    mixed = {}
    for name, tensor in base.items():
        if torch.is_floating_point(tensor):
            mixed[name] = sum(c * state[name].to(tensor.dtype) for c, state in terms)
        else:
            mixed[name] = tensor
    model.load_state_dict(mixed)


@torch.no_grad()
def linear_path(model: nn.Module, initial: State, final: State, loss_fn: LossFn,
                alphas: Sequence[float]) -> list[PathPoint]:
    """``loss_fn`` at ``(1 - alpha) * initial + alpha * final`` for each alpha."""
    work = copy.deepcopy(model)
    points = []
    for alpha in alphas:
        _mix(work, [(1.0 - alpha, initial), (alpha, final)], final)
        loss, acc = loss_fn(work)
        points.append(PathPoint(alpha=float(alpha), loss=loss, acc=acc))
    return points


def filter_normalized_direction(model: nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A random direction in parameter space, each filter scaled to its trained filter's norm;
    zero for biases and norm parameters (tensors of fewer than 2 dims) and for buffers."""
    params = dict(model.named_parameters())
    direction = {}
    for name, tensor in model.state_dict().items():
        if name not in params or tensor.dim() < 2 or not torch.is_floating_point(tensor):
            direction[name] = torch.zeros_like(tensor)
            continue
        d = torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype).to(tensor.device)
        dims = tuple(range(1, tensor.dim()))
        scale = (torch.linalg.vector_norm(tensor, dim=dims, keepdim=True)
                 / torch.linalg.vector_norm(d, dim=dims, keepdim=True).clamp_min(1e-12))
        direction[name] = d * scale
    return direction


@torch.no_grad()
def plane(model: nn.Module, loss_fn: LossFn, d1: State, d2: State,
          coords: Sequence[float]) -> list[list[float | None]]:
    """``loss_fn`` at ``theta + a * d1 + b * d2`` for a, b in ``coords``: ``surface[i][j]`` is at
    ``(coords[i], coords[j])``; theta is ``model``'s weights."""
    center = {k: v.detach().clone() for k, v in model.state_dict().items()}
    work = copy.deepcopy(model)
    surface = []
    for a in coords:
        row = []
        for b in coords:
            _mix(work, [(1.0, center), (float(a), d1), (float(b), d2)], center)
            row.append(loss_fn(work)[0])
        surface.append(row)
    return surface


def landscape(model: nn.Module, initial: State, loss_fn: LossFn, *, points: int = 21,
              alpha_min: float = -0.25, alpha_max: float = 1.25, grid: int = 9,
              radius: float = 1.0, seed: int = 0, examples: int | None = None) -> LandscapeResult:
    """Both views of the landscape of trained ``model`` (``initial``: its weights at init)."""
    final = {k: v.detach().clone() for k, v in model.state_dict().items()}
    alphas = sorted({*torch.linspace(alpha_min, alpha_max, points, dtype=torch.float64).tolist(),
                     0.0, 1.0})  # the two ends, init and trained, always on the path
    generator = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(model, generator)
    d2 = filter_normalized_direction(model, generator)
    coords = torch.linspace(-radius, radius, grid, dtype=torch.float64).tolist()
    return LandscapeResult(examples=examples,
                           path=linear_path(model, initial, final, loss_fn, alphas),
                           coords=coords, surface=plane(model, loss_fn, d1, d2, coords))
