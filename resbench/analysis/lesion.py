"""Lesion study (Veit et al. 2016): remove residual branches of a trained net, keep the shortcuts.

A residual block without its branch computes what its shortcut carries (for a post-activation
block, act(carry(x))); a plain block (shortcut ``none``) has no shortcut, so removing it means
skipping it (y = x), which is possible only where it keeps the shape. Downsampling blocks are
marked: their shortcut is a strided subsample or a projection, not the identity.
"""
from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from resbench.analysis._modes import hooks
from resbench.store import LesionDraw, LesionResult, LesionRow


def is_plain(block: nn.Module) -> bool:
    return block.shortcut.name == "none"


def removable(block: nn.Module) -> bool:
    """Whether the block can be removed: residual blocks always, plain ones where the shape is kept."""
    return not (is_plain(block) and block.changes_shape)


def _zero(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(output)


def _skip(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    return inputs[0]


@contextlib.contextmanager
def removed(model: nn.Module, indices: Sequence[int]) -> Iterator[nn.Module]:
    """``model`` with the blocks at ``indices`` (of ``model.blocks()``) removed, for the duration."""
    blocks = [block for _, block in model.blocks()]
    handles: list = []
    with hooks(handles):
        for i in indices:
            block = blocks[i]
            if not removable(block):
                raise ValueError(f"block {i} is a plain block that changes the shape; it cannot "
                                 "be removed")
            if is_plain(block):
                handles.append(block.register_forward_hook(_skip))
            else:
                handles.append(block.branch_end().register_forward_hook(_zero))
        yield model


def lesion_study(model: nn.Module, evaluate: Callable[[nn.Module], float], *, draws: int = 3,
                 max_k: int | None = None, seed: int = 0) -> LesionResult:
    """Accuracy (``evaluate(model)``) of ``model`` intact, with each block removed in turn, and
    with ``k`` distinct random removable blocks removed, k = 1..``max_k``, ``draws`` draws each."""
    intact = evaluate(model)
    rows: list[LesionRow] = []
    for i, (name, block) in enumerate(model.blocks()):
        row = LesionRow(block=name, index=i, downsample=block.changes_shape,
                        removable=removable(block))
        if row.removable:
            with removed(model, [i]):
                row.val_acc = evaluate(model)
        rows.append(row)
    pool = [row.index for row in rows if row.removable]
    draws_made: list[LesionDraw] = []
    rng = random.Random(seed)
    top = len(pool) if max_k is None else min(max_k, len(pool))
    for k in range(1, top + 1):
        for draw in range(draws if k < len(pool) else 1):  # all of them: one way to choose
            chosen = sorted(rng.sample(pool, k))
            with removed(model, chosen):
                draws_made.append(LesionDraw(k=k, draw=draw, blocks=chosen,
                                             val_acc=evaluate(model)))
    # Built whole at the end: a record writes only the fields set at construction or assigned.
    return LesionResult(val_acc=intact, blocks=rows, random=draws_made)
