"""RegNet's design space (Radosavovic et al. 2020, section 3): six numbers give every stage.

Block j (of ``depth``) gets the width u_j = w0 + wa·j, quantised in log space to
w0·wm^round(log(u_j / w0) / log(wm)) and rounded to a multiple of 8; runs of equal widths are
stages (stride 2 each). Each stage's width is then adjusted so that its bottleneck width
round(width · bottleneck_ratio) is a multiple of its group width (the group width shrinks to
the bottleneck width where that is smaller). This is the rule torchvision's
``BlockParams.from_init_params`` applies, so its RegNets are these stages. No torch here.
"""
from __future__ import annotations

import math
from typing import Any

QUANT = 8  # block widths are multiples of 8
STRIDE = 2  # every stage halves the resolution


def make_divisible(value: float, divisor: int) -> int:
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``), never
    more than 10% below ``value``."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


def regnet_stages(*, depth: int, w0: int, wa: float, wm: float, group_width: int,
                  bottleneck_ratio: float = 1.0) -> list[dict[str, Any]]:
    """The stages of the RegNet with these parameters, as spec stage mappings (``block:
    regnet``, ``shortcut: projection``, their ``group_width`` and ``bottleneck_ratio``)."""
    if wa < 0 or w0 <= 0 or wm <= 1 or w0 % QUANT:
        raise ValueError(f"RegNet needs wa >= 0, wm > 1 and w0 a positive multiple of {QUANT}")
    widths = []
    for j in range(depth):
        step = round(math.log((w0 + wa * j) / w0) / math.log(wm))
        widths.append(round(w0 * wm ** step / QUANT) * QUANT)
    runs: list[list[int]] = []
    for w in widths:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    stages = []
    for width, blocks in runs:
        inner = int(width * bottleneck_ratio)
        group = min(group_width, inner)
        width = int(make_divisible(inner, group) / bottleneck_ratio)
        stages.append({"depth": blocks, "width": width, "stride": STRIDE, "block": "regnet",
                       "shortcut": "projection", "group_width": group,
                       "bottleneck_ratio": bottleneck_ratio})
    return stages
