"""Signal propagation: constant through blocks whose branches are zero, and equal to the channel
statistics computed directly from the block outputs."""
from __future__ import annotations

import numpy as np
import torch

from resbench.analysis import signal_propagation
from resbench.compile import build
from resbench.spec import parse_spec

X = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def spec(**fields):
    return parse_spec({"input_channels": 1, "num_classes": 3, "input_size": 8,
                       "stem": {"kind": "cifar", "width": 4}, "shortcut": "identity",
                       "stages": [{"depth": 4, "width": 4, "stride": 1}], **fields})


def test_zero_branches_keep_the_signal_constant_through_the_blocks():
    torch.manual_seed(0)
    model = build(spec(zero_init_residual=True))
    rows = signal_propagation(model, X).rows
    assert [r.block for r in rows] == ["layer1.0", "layer1.1", "layer1.2", "layer1.3"]
    assert rows[0].channel_variance > 0
    for r in rows[1:]:
        assert r.mean_sq_channel_mean == rows[0].mean_sq_channel_mean
        assert r.channel_variance == rows[0].channel_variance


def test_statistics_agree_with_a_direct_computation_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = build(spec(stages=[{"depth": 2, "width": 4}, {"depth": 1, "width": 8, "stride": 2}],
                       shortcut="zero_pad"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = signal_propagation(model, X)
    for name, tensor in model.state_dict().items():  # running statistics untouched
        assert torch.equal(tensor, before[name]), name
    model.train()  # batch statistics, as the analysis uses
    outs = []
    with torch.no_grad():
        h = model.bn1(model.conv1(X)).relu()
        for _, block in model.blocks():
            h = block(h)
            outs.append(h.numpy().astype(np.float64))
    for row, out in zip(result.rows, outs, strict=True):
        means = out.mean(axis=(0, 2, 3))
        assert np.isclose(row.mean_sq_channel_mean, np.mean(means ** 2), rtol=1e-5)
        assert np.isclose(row.channel_variance, out.var(axis=(0, 2, 3)).mean(), rtol=1e-5)
