"""Norm-free residual training (``normfree``): SkipInit/ReZero, Fixup and NF-ResNet's scaled
weight standardisation with alpha/beta, on CIFAR ResNets with ``norm: none``."""
from __future__ import annotations

import math

import pytest
import torch

from resbench.blocks.layers import RELU_GAMMA, ScaledStdConv2d
from resbench.compile import _cost_whole_model, build, cost
from resbench.errors import SpecError
from resbench.plan import plan
from resbench.spec import parse_spec

NET = {"num_classes": 10, "stem": {"kind": "cifar", "width": 8}, "shortcut": "zero_pad",
       "norm": "none",
       "stages": [{"depth": 6, "width": 8}, {"depth": 6, "width": 16, "stride": 2}]}


def net(**changes):
    return parse_spec({**NET, **changes})


def test_without_a_remedy_the_signal_explodes_with_depth_and_each_remedy_tames_it():
    x = torch.randn(16, 3, 16, 16)
    deep = {**NET, "stages": [{"depth": 30, "width": 8}, {"depth": 30, "width": 16, "stride": 2}]}
    stds = {}
    for mode in ("none", "skipinit", "fixup", "nf"):
        torch.manual_seed(0)
        model = build(parse_spec({**deep, "normfree": mode}))
        with torch.no_grad():
            features = torch.nn.Sequential(*list(model.children())[:-3])(x)  # before the head
        stds[mode] = features.std().item()
    assert stds["none"] > 1e6
    assert all(0 < stds[m] < 10 for m in ("skipinit", "fixup", "nf")), stds


def test_skipinit_blocks_start_as_their_shortcut():
    torch.manual_seed(0)
    model = build(net(normfree="skipinit", shortcut="projection"))
    for _, block in model.blocks():
        assert block.gain.scale.requires_grad and block.gain.scale.item() == 0.0
    x = torch.randn(2, 8, 8, 8)
    block = model.layer1[1]
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))


def test_fixup_rescales_branches_zeroes_last_layers_and_the_classifier():
    torch.manual_seed(0)
    spec = net(normfree="fixup")
    model = build(spec)
    blocks = [b for _, b in model.blocks()]
    assert all(b.conv2.weight.abs().sum() == 0 for b in blocks)
    assert model.fc.weight.abs().sum() == 0 and model.fc.bias.abs().sum() == 0
    torch.manual_seed(0)
    plain = build(net())
    ratio = blocks[3].conv1.weight.std() / plain.layer1[3].conv1.weight.std()
    assert ratio.item() == pytest.approx(len(blocks) ** -0.5, rel=0.15)  # L^(-1/(2m-2)), m=2
    assert {n for n, _ in blocks[0].named_parameters()} >= {"branch_in.bias", "gain.scale",
                                                            "gain.bias"}


def test_nf_standardises_the_weights_and_tracks_the_expected_signal_std():
    spec = net(normfree="nf", nf_alpha=0.3, shortcut="projection")
    model = build(spec)
    block = model.layer1[2]
    assert isinstance(block.conv1, ScaledStdConv2d) and block.conv1.gamma == 1.0
    assert block.conv2.gamma == pytest.approx(RELU_GAMMA)
    w = block.conv2.standardized_weight() / RELU_GAMMA
    fan_in = w[0].numel()
    torch.testing.assert_close(w.mean((1, 2, 3)), torch.zeros(8), atol=1e-6, rtol=0)
    torch.testing.assert_close(w.var((1, 2, 3), unbiased=False) * fan_in, torch.ones(8),
                               atol=1e-4, rtol=0)
    betas = [u.kind.nf_beta for u in plan(spec) if u.part.startswith("layer")]
    # stage 1 keeps its shape: var 1 + j·alpha²; stage 2 starts with a projection of x / beta
    expected = [math.sqrt(1 + j * 0.09) for j in range(6)] + [
        math.sqrt(1 + 6 * 0.09)] + [math.sqrt(1 + j * 0.09) for j in range(1, 6)]
    assert betas == pytest.approx(expected)


@pytest.mark.parametrize("mode", ["skipinit", "fixup", "nf"])
def test_cost_per_unit_equals_the_whole_model_count(mode):
    spec = net(normfree=mode)
    c, whole = cost(spec), _cost_whole_model(spec)
    assert (c.params, c.macs, c.activation_bytes) == (whole.params, whole.macs,
                                                      whole.activation_bytes)


@pytest.mark.parametrize(("changes", "path", "words"), [
    ({"normfree": "fixup", "norm": "batch"}, "norm", "replaces normalisation"),
    ({"normfree": "nf", "norm": "group"}, "norm", "set norm: none"),
    ({"nf_alpha": 0.5}, "nf_alpha", "applies only to normfree: nf"),
    ({"normfree": "skipinit", "nf_alpha": 0.5}, "nf_alpha", "applies only to normfree: nf"),
    ({"normfree": "skipinit", "block": "preact_basic"}, "stages[0].block", "built for basic"),
    ({"normfree": "fixupp"}, "normfree", "did you mean 'fixup'"),
])
def test_normfree_mistakes_say_where_and_what(changes, path, words):
    with pytest.raises(SpecError) as info:
        parse_spec({**NET, **changes})
    assert info.value.path == path and words in str(info.value)


def test_normfree_is_in_the_key_only_when_used():
    assert "normfree" not in net().canonical() and "nf_alpha" not in net().canonical()
    assert len({net(normfree=m).key() for m in ("none", "skipinit", "fixup", "nf")}) == 4
    assert net(normfree="nf").key() != net(normfree="nf", nf_alpha=0.3).key()
