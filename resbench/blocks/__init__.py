"""Building blocks of compiled networks, one registry per axis: ``STEMS``, ``BLOCKS``,
``SHORTCUTS``, ``NORMS``, ``ACTIVATIONS``. Adding a kind is one class (or factory) and one
registration; the compiler (``resbench.compile``) looks kinds up by the names specs use."""
from __future__ import annotations

from resbench.blocks.dense import DenseLayer, Transition
from resbench.blocks.layers import (
    ACTIVATIONS,
    NORMS,
    DropPath,
    SqueezeExcite,
    conv,
    shared_layers,
)
from resbench.blocks.regnet import RegNetBlock
from resbench.blocks.residual import (
    BasicBlock,
    BlockOptions,
    Bottleneck,
    IncompatibleOptions,
    PreActBasicBlock,
    PreActBottleneck,
    ResidualBlock,
)
from resbench.blocks.shortcuts import SHORTCUTS, Gate, IncompatibleShapes, Shortcut, ZeroPad
from resbench.blocks.stems import STEMS, Stem
from resbench.registry import Registry

# The block kinds, by their vocabulary names (``resbench.spec.vocab.BLOCKS``).
BLOCKS: Registry[type[ResidualBlock]] = Registry("block", {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
    "regnet": RegNetBlock,
    "dense": DenseLayer,
    "transition": Transition,
})

__all__ = [
    "ACTIVATIONS",
    "BLOCKS",
    "NORMS",
    "SHORTCUTS",
    "STEMS",
    "BasicBlock",
    "BlockOptions",
    "Bottleneck",
    "DenseLayer",
    "DropPath",
    "Gate",
    "IncompatibleOptions",
    "IncompatibleShapes",
    "PreActBasicBlock",
    "PreActBottleneck",
    "RegNetBlock",
    "ResidualBlock",
    "Shortcut",
    "SqueezeExcite",
    "Stem",
    "Transition",
    "ZeroPad",
    "conv",
    "shared_layers",
]
