"""Shattered gradients: the correlation measure on known inputs, and per-point gradients that
agree with a direct computation one example at a time."""
from __future__ import annotations

import copy

import pytest
import torch

from resbench.analysis import gradient_correlation, line_between, shattered_gradients
from resbench.analysis._modes import calibrated
from resbench.compile import build
from resbench.spec import parse_spec


def test_correlation_of_known_gradients():
    g = torch.randn(1, 500, generator=torch.Generator().manual_seed(0))
    assert gradient_correlation(g.repeat(5, 1)) == pytest.approx(1.0)
    assert gradient_correlation(torch.cat([g, -g, g])) == pytest.approx(-1.0)
    noise = torch.randn(20, 20000, generator=torch.Generator().manual_seed(1))
    assert abs(gradient_correlation(noise)) < 0.02  # white noise: uncorrelated


def test_line_between_two_inputs():
    a, b = torch.zeros(1, 2, 2), torch.ones(1, 2, 2)
    line = line_between(a, b, 5)
    assert line.shape == (5, 1, 2, 2)
    assert torch.equal(line[0], a) and torch.equal(line[-1], b)
    assert torch.allclose(line[:, 0, 0, 0], torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))


def test_per_block_correlations_agree_with_a_direct_computation():
    torch.manual_seed(0)
    model = build(parse_spec({"input_channels": 1, "num_classes": 3, "input_size": 8,
                              "stem": {"kind": "cifar", "width": 4}, "shortcut": "zero_pad",
                              "stages": [{"depth": 2, "width": 4},
                                         {"depth": 1, "width": 8, "stride": 2}]}))
    gen = torch.Generator().manual_seed(3)
    calib = torch.randn(16, 1, 8, 8, generator=gen)
    line = line_between(calib[0], calib[1], 6)
    result = shattered_gradients(model, line, calib, seed=7)
    assert [r.block for r in result.rows] == ["layer1.0", "layer1.1", "layer2.0"]

    net = calibrated(model, calib)
    readouts = torch.Generator().manual_seed(7)
    names = [n for n, _ in net.blocks()]
    shapes = {}
    with torch.no_grad():
        h = net.bn1(net.conv1(line[:1])).relu()
        for name, block in net.blocks():
            h = block(h)
            shapes[name] = h.shape[1:]
    us = {name: torch.randn(shapes[name], generator=readouts) for name in names}
    for row in result.rows:
        grads = []
        for x in line:  # one example at a time: no batch effects at all
            x = x.unsqueeze(0).clone().requires_grad_(True)
            h = copy.deepcopy(net)
            out = {}
            hooks = [b.register_forward_hook(lambda m, i, o, n=n: out.__setitem__(n, o))
                     for n, b in h.blocks()]
            h(x)
            for hook in hooks:
                hook.remove()
            (g,) = torch.autograd.grad((out[row.block][0] * us[row.block]).sum(), x)
            grads.append(g[0])
        assert row.correlation == pytest.approx(gradient_correlation(torch.stack(grads)), abs=1e-5)
    assert -1.0 <= result.output_correlation <= 1.0
