"""Per-block settings, stem widths and the 3x3 highway gate, compiled: the built modules follow
the settings, and cost (per unit) equals the whole-model count."""
from __future__ import annotations

import torch
from torch import nn

from resbench.compile import _cost_whole_model, build, cost
from resbench.plan import plan
from resbench.spec import parse_spec

BASE = {"num_classes": 10, "stem": {"kind": "cifar", "width": 8}, "shortcut": "projection",
        "stages": [{"depth": 4, "width": 8}, {"depth": 5, "width": 16, "stride": 2}]}


def spec_with(**stage1):
    return parse_spec({**BASE, "stages": [BASE["stages"][0], {**BASE["stages"][1], **stage1}]})


def test_each_block_is_built_with_its_own_settings():
    spec = spec_with(blocks={2: {"se_ratio": 0.25}, -1: {"block": "bottleneck", "expansion": 1,
                                                          "shortcut": "gated"}})
    model = build(spec)
    layer = model.layer2
    assert [b.se is not None for b in layer] == [False, False, True, False, False]
    assert type(layer[4]).__name__ == "Bottleneck" and hasattr(layer[4], "gate")
    assert [type(b).__name__ for b in layer[:4]] == ["BasicBlock"] * 4
    # runs: block 0, blocks 1, 2, 3, 4 (the overrides split the rest)
    units = [(u.first, u.count) for u in plan(spec) if u.part == "layer2"]
    assert units == [(0, 1), (1, 1), (2, 1), (3, 1), (4, 1)]
    c, whole = cost(spec), _cost_whole_model(spec)
    assert (c.params, c.macs, c.activation_bytes) == (whole.params, whole.macs,
                                                      whole.activation_bytes)
    assert c.params == sum(p.numel() for p in model.parameters())
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


def test_a_deep_stage_with_one_override_stays_a_few_runs():
    spec = parse_spec({**BASE, "stages": [{"depth": 10_000, "width": 8,
                                           "blocks": {5000: {"se_ratio": 0.5}}}]})
    assert [(u.first, u.count) for u in plan(spec) if u.part == "layer1"] == [
        (0, 1), (1, 4999), (5000, 1), (5001, 4999)]


def test_deep_stem_widths_and_the_conv3x3_stem_build():
    deep = build(parse_spec({**BASE, "stem": {"kind": "deep", "widths": [24, 32, 64]}}))
    assert [m.out_channels for m in deep.conv1 if isinstance(m, nn.Conv2d)] == [24, 32, 64]
    simple = build(parse_spec({**BASE, "stem": {"kind": "conv3x3", "width": 8}}))
    assert simple.conv1.stride == (2, 2) and simple.conv1.kernel_size == (3, 3)
    assert simple(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_the_highway_gate_can_be_3x3():
    spec = parse_spec({**BASE, "shortcut": "gated", "gate_kernel": 3})
    model = build(spec)
    assert {b.gate.kernel_size for _, b in model.blocks()} == {(3, 3)}
    one = parse_spec({**BASE, "shortcut": "gated"})
    assert cost(spec).params - cost(one).params == sum(
        8 * b.gate.in_channels * b.gate.out_channels for _, b in model.blocks())
    assert spec.key() != one.key()
