"""Gradient-flow probe: at chosen steps, the norm of the loss gradient reaching each block's
output (``grad_norm``, dL/d output) and of the gradient of the block's own parameters
(``param_grad_norm``), to compare how gradients travel down plain and residual nets.

Hooks are installed only for the probed steps, so other steps run untouched (and a compiled
model is probed through its eager original).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class GradFlowProbe:
    """Records ``{"step", "block", "index", "grad_norm", "param_grad_norm"}`` rows per block."""

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
        """Remove the hooks and record the norms seen since :meth:`arm`.

        Call it after the backward pass (the parameters' ``.grad`` must still be there);
        ``scale`` is the loss scale of that backward pass, which output gradients carry
        (parameter gradients are already unscaled by the grad scaler's step).
        """
        grads = self._grads
        self.disarm()
        for index, (name, block) in enumerate(self.blocks):
            grad = grads.get(index)
            if grad is None:
                continue
            params = [p.grad.detach().float().norm() for p in block.parameters() if p.grad is not None]
            param_norm = float(torch.linalg.vector_norm(torch.stack(params))) if params else None
            self.rows.append({"step": step, "block": name, "index": index,
                              "grad_norm": float(grad) / scale, "param_grad_norm": param_norm})

    def disarm(self) -> None:
        """Remove the hooks without recording (after a step that failed)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._grads = {}
