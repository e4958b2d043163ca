"""One trial's training loop: per-step schedule, autocast (bf16 / fp16 with a grad scaler),
channels_last, optional torch.compile, the gradient-flow probe and divergence detection."""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from resbench.spec.recipe import Recipe
from resbench.train.metrics import synchronize
from resbench.train.optim import LRSchedule, make_optimizer
from resbench.train.probe import GradFlowProbe

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Diverged(Exception):
    """The training loss became NaN or infinite, grew past ``divergence_factor`` times the
    first step's, or the arithmetic of a step overflowed."""


_LOSS_FLOOR = 1e-3  # a starting loss below this counts as this (an already fitted net)


def resolve_device(choice: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; asking for cuda without one is an error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("recipe.device is 'cuda' but no CUDA device is available")
    return torch.device(choice)


class TrainLoop:
    """Trains one model under one recipe, one epoch at a time; all state is checkpointable."""

    def __init__(self, model: nn.Module, recipe: Recipe, device: torch.device,
                 steps_per_epoch: int, blocks: Sequence[tuple[str, nn.Module]] = ()) -> None:
        self.recipe = recipe
        self.device = device
        self.memory_format = torch.channels_last if recipe.channels_last else torch.preserve_format
        self.model = model.to(device=device, memory_format=self.memory_format)
        # A compiled module shares the model's parameters; probed steps run the eager model.
        self.forward = torch.compile(self.model) if recipe.compile else self.model
        self.optimizer = make_optimizer(self.model.parameters(), recipe.optimizer)
        self.schedule = LRSchedule(recipe.schedule, recipe.optimizer.lr, recipe.epochs,
                                   steps_per_epoch)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.amp_dtype = _DTYPES.get(recipe.precision)
        self.scaler = torch.amp.GradScaler(device.type) if recipe.precision == "fp16" else None
        self.probe = GradFlowProbe(blocks, recipe.grad_probe_steps)
        self.frozen_eval: list[nn.Module] = []  # modules kept in eval mode (frozen stages)
        self.step = 0
        self.start_loss: float | None = None  # the first step's training loss
        self.divergence_factor = recipe.divergence_factor
        # Divergence costs a host sync to detect; on a GPU check every few steps only.
        self.check_every = 1 if device.type == "cpu" else 25

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_epoch(self, batches: Batches) -> dict[str, float]:
        """One pass over ``batches`` (augmented, on the device): mean loss and accuracy,
        images/s, time and the last learning rate."""
        self.model.train()
        for module in self.frozen_eval:
            module.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        lr = self.schedule.lr_at(self.step)
        synchronize(self.device)
        start = time.perf_counter()
        for x, y in batches:
            try:
                lr, out, loss = self._train_step(x, y)
            except (OverflowError, FloatingPointError, RuntimeError) as e:
                if isinstance(e, RuntimeError) and "overflow" not in str(e):
                    raise
                raise Diverged(f"numeric overflow at step {self.step}: "
                               f"{str(e).strip().splitlines()[0][:200]}") from e
            n = y.shape[0]
            loss_sum += loss.detach().float() * n
            correct += (out.detach().argmax(1) == y).sum()
            seen += n
            self.step += 1
            if self.step % self.check_every == 0 or self.start_loss is None:
                self._check(loss_sum.item(), loss.detach().float().item(), self.step - 1)
        synchronize(self.device)
        elapsed = time.perf_counter() - start
        train_loss = loss_sum.item() / max(seen, 1)
        self._check(train_loss, train_loss, self.step - 1, epoch_mean=True)
        return {"train_loss": train_loss, "train_acc": correct.item() / max(seen, 1),
                "images_per_s": seen / elapsed if elapsed > 0 else 0.0,
                "train_time_s": elapsed, "lr": lr}

    def _check(self, total: float, loss: float, step: int, epoch_mean: bool = False) -> None:
        """Raise Diverged for a non-finite loss, or one past the bound relative to the start."""
        where = f"in the epoch ending at step {step}" if epoch_mean else f"at step {step}"
        if not math.isfinite(total) or not math.isfinite(loss):
            raise Diverged(f"non-finite training loss {where}")
        if self.start_loss is None:
            self.start_loss = loss
        factor = self.divergence_factor
        if factor is not None and loss > factor * max(self.start_loss, _LOSS_FLOOR):
            raise Diverged(f"training loss {loss:.4g} {where} exceeds divergence_factor "
                           f"{factor:g} x the starting loss {self.start_loss:.4g}")

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
        """One optimisation step: the learning rate it used, the outputs and the loss."""
        lr = self.schedule.apply(self.optimizer, self.step)
        probing = self.probe.wants(self.step)
        if probing:
            self.probe.arm()
        with self._autocast():
            out = (self.model if probing else self.forward)(x)
            loss = self.criterion(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        scale = 1.0
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if probing:
            self.probe.collect(self.step, scale)
        return lr, out, loss

    @torch.no_grad()
    def evaluate(self, batches: Batches) -> dict[str, float]:
        """Mean loss and accuracy over ``batches`` in eval mode (no augmentation)."""
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        criterion = nn.CrossEntropyLoss(reduction="sum")
        for x, y in batches:
            with self._autocast():
                out = self.forward(x)
            loss_sum += criterion(out.float(), y)
            correct += (out.argmax(1) == y).sum()
            seen += y.shape[0]
        return {"val_loss": loss_sum.item() / max(seen, 1), "val_acc": correct.item() / max(seen, 1)}

    # checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, scaler, step, RNG streams."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.step, "torch_rng": torch.get_rng_state(), "probe_rows": list(self.probe.rows),
                 "start_loss": self.start_loss}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        self.probe.rows = list(state["probe_rows"])
        self.start_loss = state.get("start_loss")  # older checkpoints: the next step's
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
