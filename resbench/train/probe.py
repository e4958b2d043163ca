"""Gradient-flow probe: the norm of the loss gradient reaching each block's output, at chosen steps.

It shows how gradients fade on their way down a plain net and pass through a residual one.
Hooks are installed only for the probed steps, so other steps run untouched (and a compiled
model is probed through its eager original).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class GradFlowProbe:
    """Records ``{"step", "block", "index", "grad_norm"}`` rows for the blocks of one model."""

    def __init__(self, blocks: Sequence[tuple[str, nn.Module]], steps: Sequence[int]) -> None:
        self.blocks = list(blocks)
        self.steps = frozenset(steps)
        self.rows: list[dict] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._grads: dict[int, torch.Tensor] = {}

    def wants(self, step: int) -> bool:
        return step in self.steps and bool(self.blocks)

    def arm(self) -> None:
        """Hook every block's output for the next forward/backward pass."""
        self._grads = {}
        for index, (_, block) in enumerate(self.blocks):
            self._handles.append(block.register_forward_hook(self._forward_hook(index)))

    def _forward_hook(self, index: int):
        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(output, torch.Tensor) and output.requires_grad:
                def keep(grad: torch.Tensor) -> None:
                    self._grads[index] = grad.detach().float().norm()
                output.register_hook(keep)
        return hook

    def collect(self, step: int, scale: float = 1.0) -> None:
        """Remove the hooks and record the norms seen since :meth:`arm` (unscaled by ``scale``)."""
        grads = self._grads
        self.disarm()
        for index, (name, _) in enumerate(self.blocks):
            grad = grads.get(index)
            if grad is not None:
                self.rows.append({"step": step, "block": name, "index": index,
                                  "grad_norm": float(grad) / scale})

    def disarm(self) -> None:
        """Remove the hooks without recording (after a step that failed)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._grads = {}
