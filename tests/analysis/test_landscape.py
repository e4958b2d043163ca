"""Loss landscapes: a linear model under squared loss has a parabola on the line from its
initial to its trained weights and a quadratic surface on the plane; directions are
filter-normalised."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from resbench.analysis import filter_normalized_direction, landscape, linear_path, plane

X = torch.randn(64, 5, generator=torch.Generator().manual_seed(0))
Y = X @ torch.randn(5, 2, generator=torch.Generator().manual_seed(1))


def linear_pair() -> tuple[nn.Linear, dict, dict]:
    torch.manual_seed(0)
    model = nn.Linear(5, 2).double()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # "trained": the least-squares solution
        solution = torch.linalg.lstsq(torch.cat([X, torch.ones(64, 1)], 1).double(),
                                      Y.double()).solution
        model.weight.copy_(solution[:5].T)
        model.bias.copy_(solution[5])
    return model, initial, {k: v.clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def _mse_double(model: nn.Module) -> tuple[float, None]:
    return float(((model(X.double()) - Y.double()) ** 2).mean()), None


def test_the_path_of_a_linear_model_is_a_parabola_with_its_minimum_at_the_trained_weights():
    model, initial, final = linear_pair()
    alphas = np.linspace(-0.5, 1.5, 9)
    losses = np.array([p.loss for p in linear_path(model, initial, final, _mse_double, alphas)])
    coeffs, residual, *_ = np.polyfit(alphas, losses, 2, full=True)
    assert coeffs[0] > 0
    assert residual[0] < 1e-18 * max(1.0, float(np.sum(losses ** 2)))
    assert -coeffs[1] / (2 * coeffs[0]) == pytest.approx(1.0, abs=1e-9)  # least squares: min at 1
    assert losses[2] == pytest.approx(_mse_double_at(initial))


def _mse_double_at(state: dict) -> float:
    model = nn.Linear(5, 2).double()
    model.load_state_dict(state)
    return _mse_double(model)[0]


def test_the_plane_of_a_linear_model_is_quadratic_and_centred_on_the_trained_loss():
    model, _, _ = linear_pair()
    gen = torch.Generator().manual_seed(4)
    d1, d2 = filter_normalized_direction(model, gen), filter_normalized_direction(model, gen)
    coords = [-1.0, -0.5, 0.0, 0.5, 1.0]
    surface = np.array(plane(model, _mse_double, d1, d2, coords))
    assert surface[2, 2] == pytest.approx(_mse_double(model)[0])
    # Third differences of a quadratic vanish along both axes.
    assert np.abs(np.diff(surface, 3, axis=0)).max() < 1e-9
    assert np.abs(np.diff(surface, 3, axis=1)).max() < 1e-9
    assert (surface >= surface[2, 2] - 1e-12).all()  # the trained weights are the minimum


def test_directions_have_the_trained_filter_norms_and_leave_biases_and_norms_alone():
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 4))
    d = filter_normalized_direction(model, torch.Generator().manual_seed(0))
    state = model.state_dict()
    for name in ("0.weight", "3.weight"):
        w, v = state[name], d[name]
        assert torch.allclose(v.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)
        assert not torch.allclose(v, w)
    for name in ("0.bias", "1.weight", "1.bias", "1.running_mean", "3.bias"):
        assert torch.count_nonzero(d[name]) == 0


def test_landscape_includes_both_ends_of_the_path():
    model, initial, _ = linear_pair()
    result = landscape(model, initial, _mse_double, points=4, alpha_min=-0.5, alpha_max=1.5,
                       grid=3, radius=0.5)
    alphas = [p.alpha for p in result.path]
    assert 0.0 in alphas and 1.0 in alphas and alphas == sorted(alphas)
    assert result.coords == [-0.5, 0.0, 0.5]
    assert result.surface[1][1] == pytest.approx(result.path[alphas.index(1.0)].loss)
