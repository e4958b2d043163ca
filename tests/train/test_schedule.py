"""The per-step learning rate: linear warmup, then constant, step decay or cosine."""
from __future__ import annotations

import math

import pytest
import torch

from resbench.spec.recipe import OptimizerConfig, ScheduleConfig
from resbench.train.optim import LRSchedule, make_optimizer


def lrs(schedule: dict, epochs: int = 10, steps: int = 10, peak: float = 0.1) -> list[float]:
    s = LRSchedule(ScheduleConfig(**schedule), peak, epochs, steps)
    return [s.lr_at(i) for i in range(s.total_steps)]


def test_warmup_rises_linearly_then_cosine_falls_to_min_lr():
    values = lrs({"name": "cosine", "warmup_epochs": 2, "min_lr": 0.001})
    warm = values[:20]
    assert warm[0] == pytest.approx(0.1 / 20) and warm[-1] == pytest.approx(0.1)
    assert all(b - a == pytest.approx(0.1 / 20) for a, b in zip(warm, warm[1:]))
    cos = values[20:]
    assert cos[0] == pytest.approx(0.1) and cos[-1] == pytest.approx(0.001)
    assert all(b < a for a, b in zip(cos, cos[1:]))
    mid = cos[len(cos) // 2]
    assert mid == pytest.approx(0.001 + 0.099 * 0.5 * (1 + math.cos(math.pi * 40 / 79)))


def test_step_decay_multiplies_by_gamma_at_each_milestone():
    values = lrs({"name": "step", "milestones": [5, 8], "gamma": 0.1})
    assert values[0] == values[49] == pytest.approx(0.1)
    assert values[50] == values[79] == pytest.approx(0.01)
    assert values[80] == values[-1] == pytest.approx(0.001)


def test_constant_with_warmup():
    values = lrs({"name": "constant", "warmup_epochs": 0.5})
    assert values[4] == pytest.approx(0.1) and values[0] == pytest.approx(0.02)
    assert set(values[5:]) == {0.1}


def test_apply_sets_every_group():
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimizerConfig(name="adamw", lr=1.0))
    assert isinstance(opt, torch.optim.AdamW)
    s = LRSchedule(ScheduleConfig(name="step", milestones=(1,), gamma=0.5), 1.0, 2, 4)
    assert s.apply(opt, 5) == 0.5 and opt.param_groups[0]["lr"] == 0.5


def test_sgd_options_reach_the_optimizer():
    opt = make_optimizer([torch.nn.Parameter(torch.zeros(1))],
                         OptimizerConfig(name="sgd", lr=0.2, momentum=0.8, nesterov=True,
                                         weight_decay=0.01))
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.SGD)
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.8, True, 0.01)
