"""The compile plan: the network ResNet builds is the plan's units, in order, and cost() counted
per unit equals today's count of the whole network (``_cost_whole_model``)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from resbench.compile import (
    _LAYERS,
    _OPS,
    _clear_memos,
    _cost_whole_model,
    _Counter,
    _measure,
    build,
    cost,
)
from resbench.errors import SpecError
from resbench.plan import BlockUnit, parts, plan
from resbench.spec import load_spec, parse_spec
from resbench.spec.vocab import BLOCKS as VOCAB_BLOCKS
from resbench.spec.vocab import SHORTCUTS as VOCAB_SHORTCUTS

from .conftest import spec_files, spec_id
from .test_properties import specs

@pytest.mark.parametrize("path", spec_files(), ids=spec_id)
def test_cost_per_unit_equals_the_whole_model_count(path):
    spec = load_spec(path)
    assert cost(spec) == _cost_whole_model(spec)


def test_cost_per_unit_equals_the_whole_model_count_at_other_sizes():
    spec = load_spec(spec_files()[0].parents[1] / "torchvision" / "resnet18.yaml")
    assert cost(spec, input_size=97, batch_size=3) == _cost_whole_model(spec, 97, 3)


def test_a_stage_is_its_first_block_and_one_run_of_equal_blocks():
    spec = parse_spec({"stem": {"kind": "cifar", "width": 8}, "shortcut": "zero_pad", "stages": [
        {"depth": 5, "width": 16}, {"depth": 1, "width": 32, "stride": 2}]})
    units = plan(spec)
    assert [(u.part, u.first, u.count) for u in units] == [
        ("stem", 0, 1), ("layer1", 0, 1), ("layer1", 1, 4), ("layer2", 0, 1), ("head", 0, 1)]
    assert [p for p, _ in parts(units)] == ["stem", "layer1", "layer2", "head"]
    block = units[3].kind
    assert isinstance(block, BlockUnit) and (block.in_channels, block.stride) == (16, 2)
    assert [u.block for u in units[1:3]] == [1, 2]


def test_the_network_is_the_plan_built_in_order():
    spec = parse_spec({"stem": "imagenet", "block": "preact_basic", "stochastic_depth": 0.2,
                       "head": {"dropout": 0.1},
                       "stages": [{"depth": 3, "width": 8},
                                  {"depth": 2, "width": 16, "stride": 2}]})
    model = build(spec)
    children, blocks = [], []
    for part, units in parts(plan(spec)):
        if units[0].stacked:
            children.append(part)
            blocks += [f"{part}.{u.first + k}" for u in units for k in range(u.count)]
        else:
            children += [name for u in units for name in u.build()]
    assert [name for name, _ in model.named_children()] == children
    assert [name for name, _ in model.blocks()] == blocks
    rates = [b.drop_path.p for _, b in model.blocks()]
    assert rates == pytest.approx([0.2 * k / 5 for k in range(1, 6)])


def test_depth_does_not_change_the_plan_size():
    small = parse_spec({"stem": "cifar", "stages": [{"depth": 2, "width": 16}]})
    # Past any bound the schema sets (copies skip validation): cost() itself stays bounded.
    deep_stage = small.stages[0].model_copy(update={"depth": 10**6})
    spec = small.model_copy(update={"stages": (deep_stage,)})
    units = plan(spec)
    assert len(units) == 4 and units[2].count == 10**6 - 1
    c = cost(spec)
    one = cost(small)
    assert c.stages[1].blocks == 10**6
    assert c.stages[1].params == (10**6 // 2) * one.stages[1].params


@st.composite
def deeper_specs(draw):
    """The vocabulary's combinations (``test_properties.specs``) with deeper stages, so that
    runs of equal blocks occur, at an odd input size and batch."""
    data = draw(specs())
    for stage in data["stages"]:
        stage["depth"] = draw(st.integers(1, 4))
    return data, draw(st.sampled_from([8, 15, 16, 33])), draw(st.integers(1, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deeper_specs())
def test_random_specs_cost_per_unit_as_the_whole_model(drawn):
    data, size, batch = drawn
    try:
        spec = parse_spec(data)
    except SpecError:
        assume(False)
    assert cost(spec, size, batch) == _cost_whole_model(spec, size, batch)


def test_the_memo_follows_the_default_dtype():
    spec = parse_spec({"stem": "cifar", "stages": [{"depth": 2, "width": 8}]})
    single = cost(spec)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        double = cost(spec)
        assert double == _cost_whole_model(spec)
    finally:
        torch.set_default_dtype(previous)
    assert double.activation_bytes == 2 * single.activation_bytes
    assert (double.params, double.macs) == (single.params, single.macs)


def test_cost_locates_a_block_that_cannot_build_like_build_does():
    spec = parse_spec({"stem": "cifar", "stages": [{"depth": 1, "width": 16},
                                                   {"depth": 2, "width": 32, "stride": 2}]})
    stage = spec.stages[1].model_copy(update={"shortcut": "identity"})
    broken = spec.model_copy(update={"stages": (spec.stages[0], stage)})
    with pytest.raises(SpecError) as built:
        build(broken)
    with pytest.raises(SpecError) as costed:
        cost(broken)
    assert costed.value.path == built.value.path == "stages[1]"
    assert str(costed.value) == str(built.value) and "block 0" in str(costed.value)


# Every block family, stem, shortcut, norm and norm-free mode, and the ways a block's layers
# repeat (a bottleneck of expansion 1 has two equal 1x1 convs; NF-ResNets convert each).
COVERING = ["ablations/resnet56_gated", "ablations/resnet56_option_a", "cifar/densenet_bc_100",
            "normfree/resnet110_fixup", "normfree/resnet110_nf", "normfree/resnet110_skipinit",
            "preact/preact_resnet164", "regnet/regnet_y_400mf", "timm/resnet26t",
            "torchvision/resnext50_32x4d"]
CONSTRUCTED = [
    {"stem": "cifar", "norm": "none", "normfree": "nf", "block": "bottleneck",
     "stages": [{"depth": 2, "width": 16, "expansion": 1}]},
] + [
    {"stem": "cifar", "norm": "none", "normfree": nf, "block": block, "shortcut": "projection",
     "stages": [{"depth": 3, "width": 16}, {"depth": 2, "width": 32, "stride": 2}]}
    for nf in ("nf", "fixup", "skipinit") for block in ("basic", "bottleneck")
] + [
    {"stem": "deep", "norm": "group", "activation": "silu", "block": "preact_bottleneck",
     "se_ratio": 0.25, "stages": [{"depth": 2, "width": 16, "expansion": 1},
                                  {"depth": 2, "width": 32, "stride": 2, "groups": 2}]},
]


def test_cost_from_empty_memos_then_from_memoised_ops_equals_the_whole_model():
    """Every unit measured with no op or layer seen before, then every unit built again with
    its ops memoised and its convs and norms shared and replayed (the unit memo emptied, the
    others kept), then straight from the unit memo."""
    specs = [load_spec(name) for name in COVERING] + [parse_spec(d) for d in CONSTRUCTED]
    reference = [_cost_whole_model(spec, 64) for spec in specs]
    _clear_memos()
    assert [cost(spec, 64) for spec in specs] == reference
    _measure.cache_clear()
    assert len(_OPS) > 0 and len(_LAYERS) > 0
    assert [cost(spec, 64) for spec in specs] == reference
    assert [cost(spec, 64) for spec in specs] == reference


def test_a_block_with_two_equal_layers_gets_two_while_cost_measures():
    """NF-ResNets standardise each conv of a block in place of the block's own: a bottleneck
    of expansion 1 whose 1x1 convs are equal must still have two of them to convert."""
    spec = parse_spec(CONSTRUCTED[0])
    _clear_memos()
    assert cost(spec) == _cost_whole_model(spec)
    assert cost(spec).params == sum(p.numel() for p in build(spec).parameters())


def test_the_op_and_layer_memos_are_bounded(monkeypatch):
    import resbench.compile as compile_module

    monkeypatch.setattr(compile_module, "OP_CACHE_SIZE", 5)
    monkeypatch.setattr(compile_module, "LAYER_CACHE_SIZE", 3)
    spec = load_spec(spec_files()[0])
    _clear_memos()
    assert cost(spec) == _cost_whole_model(spec)
    assert len(_OPS) == 5 and len(_LAYERS) == 3
    _measure.cache_clear()
    assert cost(spec) == _cost_whole_model(spec)


def test_the_counter_counts_as_torchs_flop_counter_on_fresh_in_place_and_view_outputs():
    """A memoised op gives what running it gives: fresh outputs (one or a tuple), an in-place
    result (the argument itself), a view (always run), and FLOPs as FlopCounterMode's."""
    from torch.utils.flop_counter import FlopCounterMode

    from resbench.compile import _AllocatedBytes

    def program(x, w):
        y = torch.nn.functional.conv2d(x, w, stride=2)
        y = torch.relu_(y)
        values, indices = torch.max(y.flatten(1), dim=1)
        return torch.addmm(values[:, None], y.flatten(1)[:, :5], w.flatten(1)[:5, :7]), indices

    x = torch.empty(3, 4, 9, 9, device="meta")
    w = torch.empty(6, 4, 3, 3, device="meta")
    flops, allocated = FlopCounterMode(display=False), _AllocatedBytes()
    with torch.no_grad(), flops, allocated:
        expected = program(x, w)
    _OPS.clear()
    for _ in range(2):  # every op run, then every op memoised
        counter = _Counter()
        with torch.no_grad(), counter:
            got = program(x, w)
        assert (counter.flops, counter.allocated) == (flops.get_total_flops(), allocated.total)
        assert [(t.shape, t.stride(), t.dtype) for t in got] == \
            [(t.shape, t.stride(), t.dtype) for t in expected]
    y = torch.empty(2, 3, device="meta")
    with _Counter():
        assert torch.relu_(y) is y  # in place, from the memo too
        assert torch.relu_(y) is y


def test_the_op_memo_tells_apart_what_an_op_depends_on():
    """Scalars by type (1, 1.0 and True are equal in Python, not to torch), factories by the
    default dtype, and an in-place op that reshapes its argument is run each time."""
    _OPS.clear()
    n = torch.empty(3, dtype=torch.int64, device="meta")
    with _Counter():
        assert torch.add(n, 1).dtype == torch.int64
        assert torch.add(n, 1.0).dtype == torch.float32
        assert torch.add(n, True).dtype == torch.int64
        assert torch.ones(2).dtype == torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with _Counter():
            assert torch.ones(2).dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)
    z = torch.empty(2, 3, device="meta")
    with _Counter():
        z.unsqueeze_(0)
        z.unsqueeze_(0)
    assert z.shape == (1, 1, 2, 3)


def test_the_counter_decomposes_as_torchs_flop_counter_does():
    """Under inference_mode composite ops reach the dispatch mode whole (linear, conv2d): both
    counters decompose them into the ops that have FLOP formulas."""
    from torch.utils.flop_counter import FlopCounterMode

    x, w = torch.empty(4, 3, 8, 8, device="meta"), torch.empty(5, 3, 3, 3, device="meta")
    a, b = torch.empty(4, 6, device="meta"), torch.empty(7, 6, device="meta")

    def program():
        return torch.nn.functional.conv2d(x, w), torch.nn.functional.linear(a, b)

    with torch.inference_mode():
        with FlopCounterMode(display=False) as reference:
            program()
        _OPS.clear()
        for _ in range(2):
            with _Counter() as counter:
                program()
            assert counter.flops == reference.get_total_flops() > 0


def test_layers_are_shared_only_while_cost_measures():
    """cost() builds its units with equal convs and norms shared between units (within one
    unit, a repeated call gets a module per repeat); a network built to train never shares."""
    from resbench.blocks import shared_layers
    from resbench.blocks.layers import batch_norm, conv

    spec = parse_spec({"stem": "cifar", "stages": [{"depth": 3, "width": 16}]})
    assert cost(spec) == _cost_whole_model(spec)
    model = build(spec)
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    assert len({id(m) for m in layers}) == len(layers)
    block = model.layer1[1]
    assert block.conv1 is not block.conv2 and block.bn1 is not block.bn2
    pool: dict = {}
    with shared_layers(pool):
        first = [conv(16, 16, 3), conv(16, 16, 3), conv(16, 16, 3, 2), batch_norm(16)]
    assert len({id(m) for m in first}) == 4 and len(pool) == 4
    with shared_layers(pool):
        again = [conv(16, 16, 3), conv(16, 16, 3), conv(16, 16, 3, 2), batch_norm(16)]
    assert [id(m) for m in again] == [id(m) for m in first]
    assert conv(16, 16, 3) is not conv(16, 16, 3)
    assert len(pool) == 4


VALUES_ONLY_OPTIONS = [(kind, name) for kind, info in VOCAB_SHORTCUTS.items()
                       for name, option in info.options.items() if option.values_only]


def test_values_only_options_are_shortcut_options():
    """``UnitKind.costed`` resets shortcut options only: a block-kind option marked values-only
    would be measured at every value, silently."""
    assert VALUES_ONLY_OPTIONS, "no shortcut option is marked values_only: the test below is empty"
    marked = [(kind, name) for kind, info in VOCAB_BLOCKS.items()
              for name, option in info.options.items() if option.values_only]
    assert not marked, f"block options marked values_only, which costed() ignores: {marked}"


@pytest.mark.parametrize("kind, option", VALUES_ONLY_OPTIONS)
def test_an_option_that_sets_values_only_changes_no_count(kind, option):
    """cost() counts a block with a values-only option at its default (one measurement for
    every value): the whole-model count of the real modules, at each value, must agree."""
    for block, extra in (("basic", {}), ("preact_bottleneck", {}),
                         ("bottleneck", {"norm": "none", "normfree": "nf"})):
        nets = [parse_spec({"stem": "cifar", "block": block, "shortcut": kind, option: value,
                            **extra, "stages": [{"depth": 2, "width": 16},
                                                {"depth": 2, "width": 32, "stride": 2}]})
                for value in (0.0, 1.0, -2.5, 3.0, 0.37)]
        _clear_memos()
        assert cost(nets[0]) == _cost_whole_model(nets[0])
        measured = _measure.cache_info().currsize
        for net in nets[1:]:
            assert cost(net) == _cost_whole_model(net)
        assert _measure.cache_info().currsize == measured


def test_nf_resnets_blocks_share_measurements_whatever_their_alpha_and_beta():
    nets = [parse_spec({"stem": "cifar", "norm": "none", "normfree": "nf", "nf_alpha": alpha,
                        "stages": [{"depth": 6, "width": 16},
                                   {"depth": 6, "width": 32, "stride": 2}]})
            for alpha in (0.2, 1.0, 0.05)]
    _clear_memos()
    for net in nets:
        assert cost(net) == _cost_whole_model(net)
    # each block is a unit of its own (its beta differs), measured as one of 5 distinct kinds
    assert len(plan(nets[0])) == 14 and _measure.cache_info().currsize == 5
