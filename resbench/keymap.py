"""State_dict key mappings between resbench's module names and a reference implementation's,
for the families whose reference names cannot be followed: resbench keeps one layout for every
net (``conv1``/``bn1`` stem, ``layer{i}.{j}`` blocks of ``conv1``, ``bn1``, ..., ``fc`` head),
torchvision's ResNets need no mapping, its RegNets and DenseNets do:

========================================  ==============================================
resbench                                  torchvision
========================================  ==============================================
regnet: ``conv1``, ``bn1``                ``stem.0``, ``stem.1``
regnet: ``layer{i}.{j}.conv1`` / ``bn1``  ``trunk_output.block{i}.block{i}-{j}.f.a.0`` / ``.1``
regnet: ``conv2``/``bn2``, ``conv3``/     ``f.b.0``/``f.b.1``, ``f.c.0``/``f.c.1``, ``f.se``,
``bn3``, ``se``, ``downsample``           ``proj``
densenet: ``conv1``, ``bn1``              ``features.conv0``, ``features.norm0``
densenet: ``layer{2b-1}.{j}.bn1`` ...     ``features.denseblock{b}.denselayer{j+1}.norm1`` ...
densenet: ``layer{2t}.0.bn1``/``conv1``   ``features.transition{t}.norm``/``conv``
densenet: ``final_norm``, ``fc``          ``features.norm5``, ``classifier``
========================================  ==============================================

``from_torchvision(family, state_dict)`` renames a torchvision state_dict's keys to resbench's
(the values are untouched), ``to_torchvision`` the other way; a key that no rule matches is an
error, so a strict load never silently drops weights. Stdlib and ``resbench.errors`` only.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from resbench.errors import unknown

V = TypeVar("V")

# The layers inside one block: resbench's name -> torchvision's, per family.
_REGNET_BLOCK = {"conv1": "f.a.0", "bn1": "f.a.1", "conv2": "f.b.0", "bn2": "f.b.1",
                 "se": "f.se", "conv3": "f.c.0", "bn3": "f.c.1", "downsample": "proj"}
_DENSE_LAYER = {"bn1": "norm1", "conv1": "conv1", "bn2": "norm2", "conv2": "conv2"}
_TRANSITION = {"bn1": "norm", "conv1": "conv"}
_FLAT = {
    "regnet": {"conv1": "stem.0", "bn1": "stem.1", "fc": "fc"},
    "densenet": {"conv1": "features.conv0", "bn1": "features.norm0",
                 "final_norm": "features.norm5", "fc": "classifier"},
}


def _layer(table: Mapping[str, str], name: str, *, forward: bool) -> str | None:
    """A block's layer name in the other layout (``name`` may continue: ``se.fc1``)."""
    pairs = [(theirs, ours) if forward else (ours, theirs) for ours, theirs in table.items()]
    for src, dst in pairs:
        if name == src or name.startswith(src + "."):
            return dst + name[len(src):]
    return None


def _flat(family: str, key: str, *, forward: bool) -> str | None:
    head, _, tail = key.rpartition(".")
    out = _layer(_FLAT[family], head, forward=forward)
    return None if out is None else f"{out}.{tail}"


def _regnet(key: str, forward: bool) -> str | None:
    if forward:
        m = re.fullmatch(r"trunk_output\.block(\d+)\.block\1-(\d+)\.(.+)\.(\w+)", key)
        if m:
            inner = _layer(_REGNET_BLOCK, m[3], forward=True)
            return inner and f"layer{m[1]}.{m[2]}.{inner}.{m[4]}"
    else:
        m = re.fullmatch(r"layer(\d+)\.(\d+)\.(.+)\.(\w+)", key)
        if m:
            inner = _layer(_REGNET_BLOCK, m[3], forward=False)
            return inner and f"trunk_output.block{m[1]}.block{m[1]}-{m[2]}.{inner}.{m[4]}"
    return _flat("regnet", key, forward=forward)


def _densenet(key: str, forward: bool) -> str | None:
    if forward:
        m = re.fullmatch(r"features\.denseblock(\d+)\.denselayer(\d+)\.(\w+)\.(\w+)", key)
        if m:
            inner = _layer(_DENSE_LAYER, m[3], forward=True)
            return inner and f"layer{2 * int(m[1]) - 1}.{int(m[2]) - 1}.{inner}.{m[4]}"
        m = re.fullmatch(r"features\.transition(\d+)\.(\w+)\.(\w+)", key)
        if m:
            inner = _layer(_TRANSITION, m[2], forward=True)
            return inner and f"layer{2 * int(m[1])}.0.{inner}.{m[3]}"
    else:
        m = re.fullmatch(r"layer(\d+)\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            stage, j = int(m[1]), int(m[2])
            if stage % 2:
                inner = _layer(_DENSE_LAYER, m[3], forward=False)
                return inner and (f"features.denseblock{(stage + 1) // 2}.denselayer{j + 1}."
                                  f"{inner}.{m[4]}")
            inner = _layer(_TRANSITION, m[3], forward=False)
            return inner and f"features.transition{stage // 2}.{inner}.{m[4]}"
    return _flat("densenet", key, forward=forward)


FAMILIES: dict[str, Callable[[str, bool], str | None]] = {"regnet": _regnet,
                                                          "densenet": _densenet}


def _rename(family: str, state_dict: Mapping[str, V], *, forward: bool) -> dict[str, V]:
    if family not in FAMILIES:
        raise unknown("key mapping", family, sorted(FAMILIES))
    out: dict[str, V] = {}
    for key, value in state_dict.items():
        renamed = FAMILIES[family](key, forward)
        if renamed is None:
            raise KeyError(f"no {family} key mapping for {key!r}")
        out[renamed] = value
    return out


def from_torchvision(family: str, state_dict: Mapping[str, V]) -> dict[str, V]:
    """A torchvision ``family`` state_dict with resbench's key names."""
    return _rename(family, state_dict, forward=True)


def to_torchvision(family: str, state_dict: Mapping[str, V]) -> dict[str, V]:
    """A resbench state_dict of a ``family`` net with torchvision's key names."""
    return _rename(family, state_dict, forward=False)
