"""Property test: any valid combination of the vocabulary builds, runs a training step, and
cost() agrees with the real module (parameters, and each part's output shape)."""
from __future__ import annotations

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from resbench.compile import build, cost
from resbench.errors import SpecError
from resbench.spec import parse_spec
from resbench.spec.vocab import ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS

from .conftest import n_params


@st.composite
def specs(draw):
    block = draw(st.sampled_from(sorted(BLOCKS)))
    grouped = BLOCKS[block].grouped
    stages = [{"depth": draw(st.integers(1, 2)), "width": draw(st.sampled_from([4, 8, 16])),
               "stride": draw(st.sampled_from([1, 2])),
               "shortcut": draw(st.sampled_from(sorted(SHORTCUTS)))}
              for _ in range(draw(st.integers(1, 3)))]
    data = {
        "num_classes": draw(st.integers(2, 5)),
        "input_channels": draw(st.sampled_from([1, 3])),
        "stem": {"kind": draw(st.sampled_from(sorted(STEMS))),
                 "width": draw(st.sampled_from([8, 16]))},
        "block": block,
        "norm": draw(st.sampled_from(sorted(NORMS))),
        "activation": draw(st.sampled_from(sorted(ACTIVATIONS))),
        "se_ratio": draw(st.sampled_from([0.0, 0.25])),
        "stochastic_depth": draw(st.sampled_from([0.0, 0.3])),
        "zero_init_residual": draw(st.booleans()),
        "head": {"dropout": draw(st.sampled_from([0.0, 0.5]))},
        "stages": stages,
    }
    if grouped:
        data["groups"] = draw(st.sampled_from([1, 2]))
        data["width_per_group"] = draw(st.sampled_from([32, 64]))
    return data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_valid_specs_build_train_and_cost_consistently(data):
    try:
        spec = parse_spec(data)
    except SpecError:
        assume(False)
    torch.manual_seed(0)
    model = build(spec)
    x = torch.randn(2, spec.input_channels, 16, 16)
    shapes = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
        for name in model.stage_names]
    y = model(x)
    assert y.shape == (2, spec.num_classes) and torch.isfinite(y).all()
    y.sum().backward()
    for hook in hooks:
        hook.remove()

    c = cost(spec, input_size=16, batch_size=2)
    assert c.params == n_params(model)
    assert {s.name: s.output_shape for s in c.stages if s.blocks} == shapes
    assert sum(s.macs for s in c.stages) == c.macs > 0
