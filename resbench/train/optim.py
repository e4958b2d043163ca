"""Recipe → optimizer and per-step learning-rate schedule (linear warmup, then step or cosine)."""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from resbench.spec.recipe import OptimizerConfig, ScheduleConfig


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over ``params``, at the recipe's peak learning rate."""
    params = list(params)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                             weight_decay=cfg.weight_decay)


@dataclass(frozen=True)
class LRSchedule:
    """The learning rate at every optimizer step, as a pure function of the step.

    Warmup rises linearly to ``peak`` over ``warmup_epochs``; then ``constant`` holds it,
    ``step`` multiplies it by ``gamma`` at each milestone epoch, ``cosine`` anneals it to
    ``min_lr`` at the last step. Being pure, it needs no state in a checkpoint.
    """

    cfg: ScheduleConfig
    peak: float
    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        warmup = round(self.cfg.warmup_epochs * self.steps_per_epoch)
        if step < warmup:
            return self.peak * (step + 1) / warmup
        if self.cfg.name == "constant":
            return self.peak
        if self.cfg.name == "step":
            epoch = step / self.steps_per_epoch
            passed = sum(1 for m in self.cfg.milestones if epoch >= m)
            return self.peak * self.cfg.gamma ** passed
        span = max(1, self.total_steps - warmup - 1)
        t = min(1.0, (step - warmup) / span)
        return self.cfg.min_lr + (self.peak - self.cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * t))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set the learning rate of every parameter group for ``step``; returns it."""
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
