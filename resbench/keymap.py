"""State_dict key mappings between resbench's module names and a reference implementation's,
for the families whose reference names cannot be followed (resbench keeps one layout for every
net: ``conv1``/``bn1`` stem, ``layer{i}.{j}`` blocks, ``fc`` head). torchvision's ResNets need
none; its RegNets (``stem.0``, ``trunk_output.block{i}.block{i}-{j}.f.a.0``) do.

``from_torchvision(family, state_dict)`` renames a torchvision state_dict's keys to resbench's
(the values are untouched), ``to_torchvision`` the other way; a key that no rule matches is an
error, so a strict load never silently drops weights. Stdlib and ``resbench.errors`` only.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from resbench.errors import unknown

V = TypeVar("V")

# family -> (resbench pattern, torchvision pattern) pairs; {i} is a stage (1-based in both),
# {j} a block (0-based in resbench, as torchvision's RegNet names it too), {rest} the tail.
RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "regnet": (
        ("conv1.{rest}", "stem.0.{rest}"),
        ("bn1.{rest}", "stem.1.{rest}"),
        ("layer{i}.{j}.conv1.{rest}", "trunk_output.block{i}.block{i}-{j}.f.a.0.{rest}"),
        ("layer{i}.{j}.bn1.{rest}", "trunk_output.block{i}.block{i}-{j}.f.a.1.{rest}"),
        ("layer{i}.{j}.conv2.{rest}", "trunk_output.block{i}.block{i}-{j}.f.b.0.{rest}"),
        ("layer{i}.{j}.bn2.{rest}", "trunk_output.block{i}.block{i}-{j}.f.b.1.{rest}"),
        ("layer{i}.{j}.se.{rest}", "trunk_output.block{i}.block{i}-{j}.f.se.{rest}"),
        ("layer{i}.{j}.conv3.{rest}", "trunk_output.block{i}.block{i}-{j}.f.c.0.{rest}"),
        ("layer{i}.{j}.bn3.{rest}", "trunk_output.block{i}.block{i}-{j}.f.c.1.{rest}"),
        ("layer{i}.{j}.downsample.{rest}", "trunk_output.block{i}.block{i}-{j}.proj.{rest}"),
        ("fc.{rest}", "fc.{rest}"),
    ),
}
FAMILIES = tuple(RULES)
_FIELD = {"i": r"(?P<i>\d+)", "j": r"(?P<j>\d+)", "rest": r"(?P<rest>.+)"}


def _regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", pattern)
    return re.compile("".join(_FIELD[p] if k % 2 else re.escape(p) for k, p in enumerate(parts))
                      + r"\Z")


def _rename(family: str, state_dict: Mapping[str, V], *, forward: bool) -> dict[str, V]:
    if family not in RULES:
        raise unknown("key mapping", family, FAMILIES)
    rules = [(_regex(src), dst) for ours, theirs in RULES[family]
             for src, dst in [(theirs, ours) if forward else (ours, theirs)]]
    out: dict[str, V] = {}
    for key, value in state_dict.items():
        for regex, target in rules:
            match = regex.match(key)
            if match:
                out[target.format(**match.groupdict())] = value
                break
        else:
            raise KeyError(f"no {family} key mapping for {key!r}")
    return out


def from_torchvision(family: str, state_dict: Mapping[str, V]) -> dict[str, V]:
    """A torchvision ``family`` state_dict with resbench's key names."""
    return _rename(family, state_dict, forward=True)


def to_torchvision(family: str, state_dict: Mapping[str, V]) -> dict[str, V]:
    """A resbench state_dict of a ``family`` net with torchvision's key names."""
    return _rename(family, state_dict, forward=False)

