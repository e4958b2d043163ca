"""Per-block settings (``stages[i].blocks``) and stem widths: every spelling of one net has one
canonical form (so one key), and mistakes are located."""
from __future__ import annotations

import copy

import pytest

from resbench.errors import SpecError
from resbench.spec import parse_spec

BASE = {"num_classes": 10, "stem": "cifar", "shortcut": "projection",
        "stages": [{"depth": 3, "width": 16}, {"depth": 3, "width": 32, "stride": 2}]}


def with_stage1(**fields):
    data = copy.deepcopy(BASE)
    data["stages"][1].update(fields)
    return data


def spec_of(**fields):
    return parse_spec(with_stage1(**fields))


def error_of(data) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value


def test_spellings_of_one_net_share_a_canonical_form_and_key():
    by_index = spec_of(blocks={2: {"se_ratio": 0.25}})
    as_list = parse_spec({**BASE, "stages": [BASE["stages"][0], {
        "width": 32, "stride": 2, "blocks": [{}, {}, {"se_ratio": 0.25}]}]})
    from_end = spec_of(blocks={-1: {"se_ratio": 0.25}, 0: {"se_ratio": 0.0}, 1: {}})
    assert by_index.canonical() == as_list.canonical() == from_end.canonical()
    assert by_index.key() == as_list.key() == from_end.key()
    assert by_index.canonical()["stages"][1]["blocks"] == {"2": {"se_ratio": 0.25}}
    assert by_index.key() != spec_of().key()


def test_overrides_that_change_nothing_are_no_overrides():
    assert spec_of(blocks={1: {}, 2: {"se_ratio": 0.0}}).key() == spec_of().key()
    every = spec_of(blocks={j: {"se_ratio": 0.25} for j in range(3)})
    assert every.key() == spec_of(se_ratio=0.25).key()
    assert every.stages[1].blocks is None and "blocks" not in every.canonical()["stages"][1]


def test_block_zero_sets_the_stage_and_later_blocks_list_their_differences():
    spec = spec_of(blocks={0: {"shortcut": "gated", "gate_bias": -2.0}})
    stage = spec.stages[1]
    assert (stage.shortcut, stage.gate_bias) == ("gated", -2.0)
    assert [(b.shortcut, b.gate_bias) for b in stage.block_settings()] == [
        ("gated", -2.0), ("projection", None), ("projection", None)]
    assert spec.canonical()["stages"][1]["blocks"] == {"1": {"shortcut": "projection"},
                                                       "2": {"shortcut": "projection"}}
    # The canonical form parses back to the same net.
    again = parse_spec({**spec.canonical(), "name": "x"})
    assert again.key() == spec.key()
    assert [b.shortcut for b in again.stages[1].block_settings()] == ["gated", "projection",
                                                                      "projection"]


def test_a_block_inherits_the_stage_and_its_kind_defaults():
    spec = spec_of(shortcut="gated", gate_bias=-3.0, blocks={2: {"block": "bottleneck",
                                                                "shortcut": "projection"}})
    last = spec.stages[1].block_at(2)
    assert (last.block, last.expansion, last.shortcut, last.gate_bias) == (
        "bottleneck", 4, "projection", None)
    assert spec.stages[1].out_channels == 128
    assert spec.summary_fields()["block"] == "mixed"
    assert spec.depth == 1 + 3 * 2 + (2 * 2 + 3) + 1
    # a stage-level option is fine where one block of the stage uses it
    ok = spec_of(gate_bias=-2.0, blocks={1: {"shortcut": "gated"}})
    assert [b.gate_bias for b in ok.stages[1].block_settings()] == [None, -2.0, None]


@pytest.mark.parametrize(("fields", "path", "words"), [
    ({"blocks": {3: {"se_ratio": 0.1}}}, "stages[1].blocks[3]", "block 3 does not exist"),
    ({"blocks": {-4: {}}}, "stages[1].blocks[-4]", "this stage has 3 blocks"),
    ({"blocks": {0: {}, -3: {"se_ratio": 0.1}}}, "stages[1].blocks[-3]", "already sets"),
    ({"blocks": [{}, {}]}, "stages[1].blocks", "lists 2 blocks, but the stage's depth is 3"),
    ({"blocks": {1: {"shortcut": "identity", "gate_bias": 1.0}}},
     "stages[1].blocks[1].gate_bias", "applies only to the 'gated' shortcut"),
    ({"gate_bias": 1.0}, "stages[1].gate_bias", "applies only to the 'gated' shortcut"),
    ({"blocks": {0: {"shortcut": "identity"}}}, "stages[1].blocks[0].shortcut",
     "cannot change shape"),
    ({"blocks": {1: {"expansion": 2, "shortcut": "identity"}}}, "stages[1].blocks[1].shortcut",
     "maps 32 to 64 channels"),
    ({"blocks": {1: {"depth": 2}}}, "stages[1].blocks[1].depth", "unknown field 'depth'"),
    ({"blocks": {1: {"shortcut": "identiy"}}}, "stages[1].blocks[1].shortcut",
     "did you mean 'identity'"),
    ({"blocks": {1: {"block": "basic", "groups": 2}}}, "stages[1].blocks[1].groups",
     "support only groups=1"),
])
def test_mistakes_in_per_block_settings_say_where_and_what(fields, path, words):
    err = error_of(with_stage1(**fields))
    assert err.path == path and words in str(err)


def test_a_stage_without_depth_needs_a_list_of_blocks():
    err = error_of({**BASE, "stages": [{"width": 16}]})
    assert err.path == "stages[0].depth" and "missing" in str(err)


def test_a_top_level_option_used_by_one_block_only_is_accepted():
    spec = parse_spec({**with_stage1(blocks={2: {"shortcut": "scaled"}}), "scale": 0.25})
    assert [b.scale for b in spec.stages[1].block_settings()] == [None, None, 0.25]
    assert spec.stages[0].scale is None


def test_deep_stem_widths():
    default = parse_spec({**BASE, "stem": {"kind": "deep", "width": 64}})
    spelled = parse_spec({**BASE, "stem": {"kind": "deep", "widths": [32, 32, 64]}})
    timm = parse_spec({**BASE, "stem": {"kind": "deep", "widths": [24, 32, 64]}})
    assert default.key() == spelled.key() != timm.key()
    assert "widths" not in default.canonical()["stem"]
    assert timm.canonical()["stem"] == {"kind": "deep", "width": 64, "widths": [24, 32, 64]}
    assert timm.stem.conv_widths() == (24, 32, 64) and default.stem.conv_widths() == (32, 32, 64)


@pytest.mark.parametrize(("stem", "path", "words"), [
    ({"kind": "cifar", "widths": [16]}, "stem.widths", "applies only to the deep stem"),
    ({"kind": "deep", "widths": [16, 16]}, "stem.widths", "needs 3 numbers, got 2"),
    ({"kind": "deep", "widths": [8, 8, 16], "width": 32}, "stem.width", "widths[-1] = 16"),
])
def test_stem_width_mistakes(stem, path, words):
    err = error_of({**BASE, "stem": stem})
    assert err.path == path and words in str(err)


def test_the_conv3x3_stem():
    spec = parse_spec({**BASE, "stem": "conv3x3"})
    assert (spec.stem.width, spec.input_size, spec.depth) == (32, 224, 1 + 6 * 2 + 1)
