"""Each shortcut kind computes the formula it claims (docs/ARCHITECTURE.md's table), has the
parameters it should, and never produces a wrong shape."""
from __future__ import annotations

import copy
import dataclasses
import inspect

import pytest
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from resbench._compat.torch import TorchDispatchMode
from resbench.blocks import (
    BLOCKS,
    SHORTCUTS,
    BasicBlock,
    BlockOptions,
    Bottleneck,
    DenseLayer,
    DropPath,
    Gate,
    IncompatibleOptions,
    IncompatibleShapes,
    PreActBasicBlock,
    PreActBottleneck,
    RegNetBlock,
    Shortcut,
    Transition,
    ZeroPad,
)
from resbench.spec import vocab

from .conftest import n_params


def with_norm_statistics(module: nn.Module) -> nn.Module:
    """``module`` in eval mode, its norms given non-trivial statistics and affine parameters."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return module.eval()


def block(kind="preact_basic", shortcut="identity", c_in=8, width=8, stride=1, **options):
    """A block in eval mode with non-trivial norm statistics."""
    expansion = 4 if "bottleneck" in kind else 1
    if kind == "regnet":
        options.setdefault("block_options", {"group_width": 2})
    opts = BlockOptions.of(shortcut=shortcut, expansion=expansion, **options)
    b = BLOCKS.get(kind)(c_in, width, stride, opts)
    return with_norm_statistics(b)


def branch(b: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """F(x), the residual branch, written out by hand for each block kind."""
    r = torch.relu
    if isinstance(b, BasicBlock):
        return b.bn2(b.conv2(r(b.bn1(b.conv1(x)))))
    if isinstance(b, Bottleneck):
        return b.bn3(b.conv3(r(b.bn2(b.conv2(r(b.bn1(b.conv1(x))))))))
    if isinstance(b, PreActBasicBlock):
        return b.conv2(r(b.bn2(b.conv1(r(b.bn1(x))))))
    if isinstance(b, DenseLayer):
        return b.conv2(r(b.bn2(b.conv1(r(b.bn1(x))))))
    if isinstance(b, Transition):
        return b.pool(b.conv1(r(b.bn1(x))))
    if isinstance(b, RegNetBlock):
        inner = r(b.bn2(b.conv2(r(b.bn1(b.conv1(x))))))
        return b.bn3(b.conv3(inner if b.se is None else b.se(inner)))
    assert isinstance(b, PreActBottleneck)
    return b.conv3(r(b.bn3(b.conv2(r(b.bn2(b.conv1(r(b.bn1(x)))))))))


def output(b: nn.Module, merged: torch.Tensor) -> torch.Tensor:
    """Post-activation blocks apply the activation after the merge; pre-activation ones do not."""
    return merged if b.preact else torch.relu(merged)


class OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


x8 = torch.randn(2, 8, 8, 8)


def test_identity_is_f_plus_x():
    b = block(shortcut="identity")
    with torch.no_grad():
        torch.testing.assert_close(b(x8), branch(b, x8) + x8)
    assert b.downsample is None


def test_post_activation_blocks_apply_the_activation_after_the_sum():
    b = block("basic", shortcut="identity")
    with torch.no_grad():
        torch.testing.assert_close(b(x8), torch.relu(branch(b, x8) + x8))


def test_identity_refuses_a_change_of_shape():
    with pytest.raises(IncompatibleShapes, match="identity"):
        block(shortcut="identity", width=16)
    with pytest.raises(IncompatibleShapes):
        block(shortcut="identity", stride=2)


def test_zero_pad_subsamples_and_appends_zero_channels_without_parameters():
    b = block(shortcut="zero_pad", width=16, stride=2)
    assert isinstance(b.downsample, ZeroPad) and n_params(b.downsample) == 0
    assert n_params(b) == n_params(block(shortcut="none", width=16, stride=2))
    x = torch.randn(2, 8, 7, 7)  # odd size: subsampling must agree with the strided conv
    s = b.downsample(x)
    assert s.shape == (2, 16, 4, 4)
    torch.testing.assert_close(s[:, :8], x[:, :, ::2, ::2])
    assert (s[:, 8:] == 0).all()
    with torch.no_grad():
        torch.testing.assert_close(b(x), branch(b, x) + s)
    post = block("basic", shortcut="zero_pad", width=16, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(post(x), torch.relu(branch(post, x) + post.downsample(x)))


def test_zero_pad_cannot_shrink_channels():
    with pytest.raises(IncompatibleShapes, match="shrink"):
        ZeroPad(16, 8, 1)


def test_zero_pad_where_the_shape_is_kept_is_plain_identity():
    assert block(shortcut="zero_pad").downsample is None


def test_projection_is_option_b():
    kept = block("basic", shortcut="projection")
    assert kept.downsample is None
    b = block("basic", shortcut="projection", width=16, stride=2)
    conv, norm = b.downsample
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert isinstance(norm, nn.BatchNorm2d)
    with torch.no_grad():
        torch.testing.assert_close(b(x8), torch.relu(branch(b, x8) + norm(conv(x8))))


def test_preact_projection_reads_the_shared_preactivation_and_has_no_norm():
    b = block("preact_basic", shortcut="projection", width=16, stride=2)
    assert len(b.downsample) == 1 and isinstance(b.downsample[0], nn.Conv2d)
    with torch.no_grad():
        pre = torch.relu(b.bn1(x8))
        torch.testing.assert_close(b(x8), branch(b, x8) + b.downsample(pre))


def test_full_projection_projects_in_every_block():
    b = block("basic", shortcut="full_projection")
    assert isinstance(b.downsample, nn.Sequential)
    with torch.no_grad():
        torch.testing.assert_close(b(x8), torch.relu(branch(b, x8) + b.downsample(x8)))


def test_avgpool_projection_is_resnet_d():
    b = block("bottleneck", shortcut="avgpool_projection", c_in=8, width=8, stride=2)
    pool, conv, norm = b.downsample
    assert isinstance(pool, nn.AvgPool2d) and conv.stride == (1, 1)
    assert isinstance(norm, nn.BatchNorm2d)
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(b(x), torch.relu(branch(b, x) + norm(conv(pool(x)))))
        assert b(x).shape == (2, 32, 4, 4)
    unstrided = block("bottleneck", shortcut="avgpool_projection", c_in=8, width=8)
    assert isinstance(unstrided.downsample[0], nn.Identity)  # keeps timm's .1/.2 key names


def test_gated_with_a_very_negative_bias_carries_x():
    b = block(shortcut="gated", gate_bias=-40.0)
    assert isinstance(b.gate, Gate) and (b.gate.bias == -40.0).all()
    with torch.no_grad():
        torch.testing.assert_close(b(x8), x8)


def test_gated_with_a_very_positive_bias_passes_only_the_branch():
    b = block(shortcut="gated", gate_bias=40.0)
    with torch.no_grad():
        torch.testing.assert_close(b(x8), branch(b, x8))


def test_gated_mixes_branch_and_carry_by_the_gate():
    b = block(shortcut="gated", width=16, stride=2, gate_bias=-1.0)
    with torch.no_grad():
        pre = torch.relu(b.bn1(x8))
        t = torch.sigmoid(b.gate(pre))
        s = b.downsample(pre)
        expected = t * branch(b, x8) + (1 - t) * s
        torch.testing.assert_close(b(x8), expected)
        assert 0.05 < t.mean() < 0.5  # sigmoid(-1) = 0.27 on average


def test_gate_bias_survives_network_init():
    from resbench.compile import build
    from resbench.spec import parse_spec

    spec = parse_spec({"stem": "cifar", "shortcut": "gated", "gate_bias": -3.0,
                       "stages": [{"depth": 2, "width": 16}, {"depth": 1, "width": 32,
                                                              "stride": 2}]})
    gates = [m for m in build(spec).modules() if isinstance(m, Gate)]
    assert len(gates) == 3 and all((g.bias == -3.0).all() for g in gates)


def test_scaled_adds_scale_times_x():
    b = block(shortcut="scaled", scale=0.25)
    with torch.no_grad():
        torch.testing.assert_close(b(x8), branch(b, x8) + 0.25 * x8)
    projected = block(shortcut="scaled", scale=0.5, width=16, stride=2)
    with torch.no_grad():
        pre = torch.relu(projected.bn1(x8))
        torch.testing.assert_close(projected(x8),
                                   branch(projected, x8) + 0.5 * projected.downsample(pre))


RESIDUAL = sorted(set(BLOCKS) - {"transition"})  # a transition is never residual (below)


@pytest.mark.parametrize("kind", RESIDUAL)
def test_none_has_no_skip_at_all(kind):
    b = block(kind, shortcut="none", width=16 if "basic" in kind else 4, stride=2)
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(b(x), output(b, branch(b, x)))
        # The output does not depend on x except through F: no add is even allocated.
        log = OpLog()
        with log:
            b(x)
    assert not any(op.startswith("add") for op in log.ops), log.ops
    with torch.no_grad(), OpLog() as with_skip:
        block(kind, shortcut="identity", c_in=8, width=8 // vocab.BLOCKS[kind].expansion)(x)
    assert sum(op.startswith("add") for op in with_skip.ops) == 1


@pytest.mark.parametrize("shortcut", ["zero_pad", "projection", "full_projection",
                                      "avgpool_projection", "gated", "scaled", "none"])
@pytest.mark.parametrize("kind", RESIDUAL)
def test_every_kind_reshapes_correctly(kind, shortcut):
    b = block(kind, shortcut=shortcut, c_in=8, width=16, stride=2).train()
    y = b(torch.randn(2, 8, 9, 9))
    assert y.shape == (2, b.out_channels, 5, 5)
    assert b.out_channels == 16 * (4 if "bottleneck" in kind else 1)


def test_drop_path_is_the_identity_in_eval_and_drops_whole_samples_in_training():
    dp = DropPath(0.5)
    x = torch.randn(256, 4, 3, 3)
    assert dp.eval()(x) is x
    y = dp.train()(x)
    kept = (y != 0).flatten(1).any(1)
    torch.testing.assert_close(y[kept], 2 * x[kept])
    assert (y[~kept] == 0).all()
    assert 0.35 < kept.float().mean() < 0.65


def test_stochastic_depth_rates_rise_linearly_and_vanish_in_eval():
    from resbench.compile import build
    from resbench.spec import parse_spec

    data = {"num_classes": 10, "shortcut": "zero_pad",
            "stem": {"kind": "cifar", "width": 8},
            "stages": [{"depth": 2, "width": 8}, {"depth": 2, "width": 16, "stride": 2}]}
    deep = build(parse_spec({**data, "stochastic_depth": 0.4}))
    rates = [b.drop_path.p for _, b in deep.blocks()]
    assert rates == pytest.approx([0.1, 0.2, 0.3, 0.4])
    plain = build(parse_spec(data))
    assert all(b.drop_path is None for _, b in plain.blocks())
    plain.load_state_dict(deep.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(deep.eval()(x), plain.eval()(x))


def test_every_shortcut_kind_is_registered_as_a_class():
    from resbench.blocks import SHORTCUTS, Shortcut

    assert all(issubclass(SHORTCUTS.get(name), Shortcut) for name in SHORTCUTS)
    assert issubclass(PreActBasicBlock, nn.Module)


# ----- each shortcut module alone, against docs/ARCHITECTURE.md's table -------------------------

def shortcut(kind, c_in, c_out, stride, preact, **options):
    """A shortcut module as a block builds it, in eval mode with non-trivial norm statistics."""
    sc = BlockOptions.of(shortcut=kind, **options).make_shortcut(c_in, c_out, stride,
                                                                 preact=preact)
    return with_norm_statistics(sc)


def project(sc, pre, stride, preact, avgpool=False):
    """P(pre), written with the functional ops: [avg-pool,] 1x1 conv, [norm]."""
    layers = list(sc.downsample)
    if avgpool:
        if stride > 1:
            pre = F.avg_pool2d(pre, stride, stride, ceil_mode=True, count_include_pad=False)
        layers, stride = layers[1:], 1
    out = F.conv2d(pre, layers[0].weight, layers[0].bias, stride=stride)
    assert layers[0].kernel_size == (1, 1) and len(layers) == (1 if preact else 2)
    if not preact:
        bn = layers[1]
        out = F.batch_norm(out, bn.running_mean, bn.running_var, bn.weight, bn.bias, False,
                           0.0, bn.eps)
    return out


def carried(sc, x, pre, stride, preact, reshaped, avgpool=False):
    return project(sc, pre, stride, preact, avgpool) if reshaped else x


def pad(x, c_out, stride):
    return F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, 0, c_out - x.shape[1]))


def gate(sc, pre, stride):
    k = sc.gate.weight.shape[-1]
    return torch.sigmoid(F.conv2d(pre, sc.gate.weight, sc.gate.bias, stride=stride,
                                  padding=k // 2))


# y for each kind from (module, f, x, pre, stride, preact, reshaped): the table's formulas.
FORMULAS = {
    "identity": lambda sc, f, x, pre, s, pa, r: f + x,
    "zero_pad": lambda sc, f, x, pre, s, pa, r: f + (pad(x, f.shape[1], s) if r else x),
    "projection": lambda sc, f, x, pre, s, pa, r: f + carried(sc, x, pre, s, pa, r),
    "full_projection": lambda sc, f, x, pre, s, pa, r: f + project(sc, pre, s, pa),
    "avgpool_projection": lambda sc, f, x, pre, s, pa, r: f + carried(sc, x, pre, s, pa, r, True),
    "gated": lambda sc, f, x, pre, s, pa, r: (
        gate(sc, pre, s) * f + (1 - gate(sc, pre, s)) * carried(sc, x, pre, s, pa, r)),
    "scaled": lambda sc, f, x, pre, s, pa, r: f + sc.scale * carried(sc, x, pre, s, pa, r),
    "none": lambda sc, f, x, pre, s, pa, r: f,
    "concat": lambda sc, f, x, pre, s, pa, r: torch.cat((x, f), 1),
}


def test_every_kind_has_a_reference_formula():
    assert set(FORMULAS) == set(vocab.SHORTCUTS)


@pytest.mark.parametrize("preact", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize(("kind", "reshaped"), [
    (kind, reshaped) for kind in sorted(FORMULAS) for reshaped in (False, True)
    if vocab.SHORTCUTS[kind].reshapes or not reshaped])  # identity refuses (tested below)
def test_each_shortcut_module_computes_its_formula(kind, reshaped, preact):
    c_out, stride = (16, 2) if reshaped else (8, 1)
    options = {name: next(c for c in o.choices if c != o.default) if o.choices else -0.7
               for name, o in vocab.SHORTCUTS[kind].options.items()}  # not the defaults
    sc = shortcut(kind, 8, c_out, stride, preact, **options)
    # x and pre differ, so a module reading the wrong one fails; odd sizes test the striding.
    x, pre = torch.randn(2, 8, 7, 7), torch.randn(2, 8, 7, 7)
    f = torch.randn(2, c_out, 4 if reshaped else 7, 4 if reshaped else 7)
    with torch.no_grad():
        expected = FORMULAS[kind](sc, f, x, pre, stride, preact, reshaped)
        torch.testing.assert_close(sc(f.clone(), x, pre), expected)


@pytest.mark.parametrize("kind", sorted(vocab.SHORTCUTS))
def test_each_kind_takes_exactly_the_options_its_vocabulary_entry_declares(kind):
    params = inspect.signature(SHORTCUTS.get(kind).__init__).parameters
    keywords = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY} - {"preact"}
    assert keywords == set(vocab.SHORTCUTS[kind].options)
    assert set(BlockOptions.of(shortcut=kind).shortcut_options) == keywords
    for name, option in vocab.SHORTCUTS[kind].options.items():
        assert BlockOptions.of(shortcut=kind).shortcut_options[name] == option.default


@pytest.mark.parametrize("kind", sorted(vocab.SHORTCUTS))
def test_what_each_kind_can_reshape_agrees_with_the_vocabulary(kind):
    info = vocab.SHORTCUTS[kind]
    if info.concatenates:  # adds channels by construction; only the resolution cannot change
        shortcut(kind, 8, 4, 1, False)
        with pytest.raises(IncompatibleShapes):
            shortcut(kind, 8, 4, 2, False)
        return
    for c_in, c_out, stride, allowed in ((8, 16, 2, info.reshapes), (8, 8, 2, info.reshapes),
                                         (16, 8, 1, info.reshapes and info.narrows)):
        if allowed:
            shortcut(kind, c_in, c_out, stride, False)
        else:
            with pytest.raises(IncompatibleShapes):
                shortcut(kind, c_in, c_out, stride, False)


def test_options_of_another_kind_are_refused():
    with pytest.raises(TypeError, match="'projection' has no option 'gate_bias'"):
        BlockOptions.of(shortcut="projection", gate_bias=-1.0)
    assert BlockOptions.of(shortcut="gated", gate_bias=None).shortcut_options == {
        "gate_bias": -1.0, "gate_kernel": 1}


# ----- how a block holds its shortcut --------------------------------------------------------

@pytest.mark.parametrize("kind", ["gated", "projection", "zero_pad", "none"])
def test_the_block_owns_the_shortcut_layers_under_torchvision_names(kind):
    b = block("basic", shortcut=kind, width=16, stride=2).train()
    sc = b.shortcut
    assert isinstance(sc, Shortcut) and sc.name == kind
    assert all(m is not sc for m in b.modules())  # not registered: no key of its own
    for name, layer in sc.named_children():
        assert getattr(b, name) is layer
    # Names users freeze and optimise by are the state_dict keys, one for one.
    names = [n for n, _ in b.named_parameters()] + [n for n, _ in b.named_buffers()]
    assert sorted(names) == sorted(b.state_dict())
    layers = {"gated": ["gate", "downsample"], "projection": ["downsample"],
              "zero_pad": ["downsample"], "none": []}[kind]
    assert [n for n, _ in sc.named_children()] == layers
    children = [n for n, _ in b.named_children()]
    assert children[len(children) - len(layers):] == layers  # last, in torchvision's order
    if kind == "none":
        assert b.downsample is None  # every block has one, as in torchvision
    assert sc.training and not b.eval().shortcut.training  # it follows train() and eval()
    copy_ = copy.deepcopy(b)
    assert all(getattr(copy_, n) is layer for n, layer in copy_.shortcut.named_children())


def test_a_shortcut_with_tensors_of_its_own_is_refused():
    class Owning(SHORTCUTS.get("identity")):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.alpha = nn.Parameter(torch.zeros(()))  # would get no state_dict key

    opts = dataclasses.replace(BlockOptions.of(), shortcut=Owning)
    with pytest.raises(TypeError, match="child layers"):
        BasicBlock(8, 8, 1, opts)


def test_blocks_trace_with_fx_for_torchvision_feature_extraction():
    from torchvision.models.feature_extraction import create_feature_extractor

    from resbench.compile import build
    from resbench.spec import parse_spec

    model = build(parse_spec({"stem": "cifar", "shortcut": "gated", "block": "preact_basic",
                              "stages": [{"depth": 1, "width": 16},
                                         {"depth": 1, "width": 32, "stride": 2}]})).eval()
    x = torch.randn(2, 3, 16, 16)
    traced = torch.fx.symbolic_trace(model)
    features = create_feature_extractor(model, ["layer2.0"])
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
        torch.testing.assert_close(features(x)["layer2.0"], model.layer2(model.layer1(
            model.conv1(x))))


def test_a_transition_has_no_skip_and_a_dense_layer_concatenates():
    x = torch.randn(2, 8, 8, 8)
    t = block("transition", shortcut="none", c_in=8, width=4, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(t(x), branch(t, x))
    assert t(x).shape == (2, 4, 4, 4)
    with pytest.raises(IncompatibleOptions, match="transition has no shortcut"):
        block("transition", shortcut="projection", c_in=8, width=4, stride=2)
    d = block("dense", shortcut="concat", c_in=8, width=3)
    assert d.out_channels == 11
    with torch.no_grad():
        torch.testing.assert_close(d(x), torch.cat((x, branch(d, x)), 1))
