"""The compiled network's structure: torchvision/timm names, registries that match the spec
vocabulary, purity of build(), norms, activations, squeeze-excitation, init."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resbench.blocks import (
    ACTIVATIONS,
    BLOCKS,
    NORMS,
    SHORTCUTS,
    STEMS,
    BlockOptions,
    SqueezeExcite,
)
from resbench.compile import ResNet, build
from resbench.errors import SpecError
from resbench.spec import load_spec, parse_spec, vocab

from .conftest import SPECS, n_params

CIFAR = {"stem": {"kind": "cifar", "width": 8}, "num_classes": 10, "shortcut": "projection",
         "stages": [{"depth": 2, "width": 8}, {"depth": 2, "width": 16, "stride": 2}]}


def tiny(**changes) -> ResNet:
    return build(parse_spec({**CIFAR, **changes}))


def test_registries_implement_exactly_the_spec_vocabulary():
    assert BLOCKS.names() == sorted(vocab.BLOCKS)
    assert SHORTCUTS.names() == sorted(vocab.SHORTCUTS)
    assert STEMS.names() == sorted(vocab.STEMS)
    assert NORMS.names() == sorted(vocab.NORMS)
    assert ACTIVATIONS.names() == sorted(vocab.ACTIVATIONS)


@pytest.mark.parametrize("kind", sorted(vocab.BLOCKS))
def test_blocks_agree_with_the_vocabulary(kind):
    info = vocab.BLOCKS[kind]
    shortcut = "none" if kind == "transition" else "full_projection"
    b = BLOCKS.get(kind)(16, 8, 1, BlockOptions.of(shortcut=shortcut, expansion=info.expansion))
    branch_convs = [n for n, m in b.named_modules() if isinstance(m, nn.Conv2d)
                    and not n.startswith("downsample")]
    assert len(branch_convs) == info.convs
    assert b.out_channels == 8 * info.expansion


@pytest.mark.parametrize("kind", sorted(vocab.STEMS))
def test_stems_agree_with_the_vocabulary(kind):
    info = vocab.STEMS[kind]
    norm, act = NORMS.get("batch"), ACTIVATIONS.get("relu")
    stem = STEMS.get(kind)(3, info.width, norm=norm, act=act, conv_bias=False, activate=True)
    assert stem.out_channels == info.width and stem.reduction == info.reduction
    x = torch.randn(1, 3, 32, 32)
    for module in stem.modules.values():
        x = module(x)
    assert x.shape == (1, info.width, 32 // info.reduction, 32 // info.reduction)
    assert sum(isinstance(m, nn.Conv2d) for s in stem.modules.values()
               for m in s.modules()) == info.convs


@pytest.mark.parametrize("path", [SPECS / name for name in (
    "cifar/resnet20.yaml", "cifar/plain56.yaml", "preact/preact_resnet164.yaml",
    "torchvision/resnet50.yaml")], ids=lambda p: p.stem)
def test_spec_depth_counts_the_weighted_layers_built(path):
    spec = load_spec(path)
    model = build(spec)
    weighted = [m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                and ".downsample" not in n]
    assert spec.depth == len(weighted)


def test_children_follow_torchvision_names_and_order():
    names = [n for n, _ in build(SPECS / "torchvision" / "resnet18.yaml").named_children()]
    assert names == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                     "avgpool", "flatten", "fc"]
    assert [n for n, _ in tiny().named_children()] == [
        "conv1", "bn1", "relu", "layer1", "layer2", "avgpool", "flatten", "fc"]


def test_preact_nets_have_a_bare_stem_and_a_final_norm():
    model = tiny(block="preact_basic", head={"dropout": 0.2})
    assert [n for n, _ in model.named_children()] == [
        "conv1", "layer1", "layer2", "final_norm", "final_act", "avgpool", "flatten", "dropout",
        "fc"]
    assert isinstance(model.final_norm, nn.BatchNorm2d) and model.dropout.p == 0.2


def test_blocks_lists_every_residual_block_in_order():
    model = build(SPECS / "cifar" / "resnet20.yaml")
    blocks = model.blocks()
    assert [n for n, _ in blocks] == [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)]
    modules = dict(model.named_modules())
    assert all(modules[n] is b for n, b in blocks)


def test_deep_stem_and_resnet_d_follow_timm_resnet50d():
    spec = parse_spec({"stem": "deep", "block": "bottleneck", "shortcut": "avgpool_projection",
                       "stages": [{"depth": 3, "width": 64},
                                  {"depth": 4, "width": 128, "stride": 2},
                                  {"depth": 6, "width": 256, "stride": 2},
                                  {"depth": 3, "width": 512, "stride": 2}]})
    model = build(spec)
    assert n_params(model) == 25_576_264  # timm's resnet50d
    keys = model.state_dict().keys()
    for key in ("conv1.0.weight", "conv1.1.running_var", "conv1.3.weight", "conv1.4.weight",
                "conv1.6.weight", "bn1.weight", "layer1.0.downsample.1.weight",
                "layer1.0.downsample.2.running_mean", "layer2.0.downsample.1.weight"):
        assert key in keys
    assert model.conv1[0].stride == (2, 2) and model.conv1[6].out_channels == 64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 1000)


def test_squeeze_excitation_names_and_width():
    model = tiny(se_ratio=0.25)
    se = model.layer2[0].se
    assert isinstance(se, SqueezeExcite) and se.fc1.out_channels == 4 and se.fc2.out_channels == 16
    assert "layer2.0.se.fc1.weight" in model.state_dict()
    assert all(b.se is None for _, b in tiny().blocks())
    x = torch.randn(2, 16, 4, 4)
    gate = torch.sigmoid(se.fc2(se.act(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), x * gate)


def test_group_norm_and_no_norm():
    grouped = tiny(norm="group")
    norms = [m for m in grouped.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.BatchNorm2d) for m in grouped.modules())
    assert {m.num_groups for m in norms} == {8, 16}  # gcd(32, channels)
    bare = tiny(norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in bare.modules())
    convs = [m for m in bare.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None and (c.bias == 0).all() for c in convs)
    for model in (grouped, bare, tiny(norm="none", block="preact_basic")):
        x = torch.randn(2, 3, 16, 16)
        x0 = x.clone()
        model(x).sum().backward()
        torch.testing.assert_close(x, x0)  # no activation ran in place on the input


@pytest.mark.parametrize("activation,cls",
                         [("relu", nn.ReLU), ("gelu", nn.GELU), ("silu", nn.SiLU)])
def test_activation_choice_reaches_every_block(activation, cls):
    model = tiny(activation=activation)
    acts = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.GELU, nn.SiLU))]
    assert acts and all(isinstance(a, cls) for a in acts)


def test_build_is_pure_and_deterministic():
    spec = load_spec(SPECS / "cifar" / "resnet20.yaml")
    before = spec.model_dump()
    torch.manual_seed(1)
    a = build(spec)
    torch.manual_seed(1)
    b = build(spec)
    assert spec.model_dump() == before
    assert a is not b and all(pa is not pb for pa, pb in zip(a.parameters(), b.parameters()))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = build(spec)
    assert not torch.equal(a.conv1.weight, c.conv1.weight)


def test_build_accepts_paths_and_a_device():
    path = SPECS / "cifar" / "resnet20.yaml"
    assert n_params(build(str(path))) == n_params(build(path)) == 269_722
    assert next(build(path, device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(TypeError):
        build({"stem": "cifar"})
    with pytest.raises(SpecError):
        build(SPECS / "cifar" / "missing.yaml")


@pytest.mark.parametrize("block", ["basic", "preact_basic", "bottleneck", "preact_bottleneck"])
def test_zero_init_residual_makes_every_block_start_as_its_shortcut(block):
    model = tiny(block=block, zero_init_residual=True, shortcut="zero_pad").eval()
    kept = [(n, b) for n, b in model.blocks() if b.in_channels == b.out_channels and b.stride == 1]
    assert len(kept) >= 2
    for name, b in kept:
        x = torch.randn(2, b.in_channels, 8, 8)
        with torch.no_grad():
            expected = x if b.preact else torch.relu(x)
            torch.testing.assert_close(b(x), expected, msg=name)


def test_incompatible_blocks_raise_a_located_spec_error():
    """The spec layer rejects these first; the compiler still refuses rather than mis-shape."""
    spec = parse_spec(CIFAR)
    stage = spec.stages[1].model_copy(update={"shortcut": "identity"})
    broken = spec.model_copy(update={"stages": (spec.stages[0], stage)})
    with pytest.raises(SpecError, match=r"stages\[1\].*identity"):
        build(broken)


@pytest.mark.parametrize("shortcut", ["zero_pad", "gated", "scaled", "none"])
def test_mixed_precision_and_channels_last(shortcut):
    model = tiny(shortcut=shortcut, block="preact_bottleneck", se_ratio=0.25,
                 stochastic_depth=0.2).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 16, 16).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.bfloat16 and y.shape == (4, 10)
    y.float().sum().backward()
    assert torch.isfinite(model.conv1.weight.grad).all()


@pytest.mark.slow
def test_the_forward_traces_as_one_graph_for_torch_compile():
    import torch._dynamo

    model = tiny(shortcut="gated", block="preact_basic", se_ratio=0.25, stochastic_depth=0.2)
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 16, 16))
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
