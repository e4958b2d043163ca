"""Dense connectivity in the spec language: the concat shortcut adds channels, transitions take
their width from their input, and channels that do not add up are located."""
from __future__ import annotations

import copy

import pytest

from resbench.errors import SpecError
from resbench.spec import load_spec, parse_spec
from resbench.spec.library import library_root

DENSE = {"num_classes": 10, "stem": {"kind": "cifar", "width": 24}, "block": "dense",
         "shortcut": "concat",
         "stages": [{"depth": 4, "width": 12},
                    {"block": "transition", "shortcut": "none", "depth": 1, "stride": 2},
                    {"depth": 4, "width": 12}]}


def changed(edit) -> dict:
    data = copy.deepcopy(DENSE)
    edit(data)
    return data


def test_channels_flow_through_dense_blocks_and_transitions():
    spec = parse_spec(DENSE)
    assert spec.stage_channels() == [24, 24 + 4 * 12, 36, 36 + 4 * 12]
    assert spec.stages[1].width == 36 and spec.stages[2].in_channels == 36
    assert spec.depth == 1 + 4 * 2 + 1 + 4 * 2 + 1
    # the transition's width is resolved, so giving it is the same net
    same = parse_spec(changed(lambda d: d["stages"][1].update(width=36)))
    assert same.key() == spec.key()


def test_densenet_depths_are_the_papers():
    root = library_root()
    assert load_spec(root / "densenet" / "densenet121.yaml").depth == 121
    assert load_spec(root / "densenet" / "densenet201.yaml").depth == 201
    assert load_spec(root / "cifar" / "densenet_bc_100.yaml").depth == 100


@pytest.mark.parametrize(("edit", "path", "words"), [
    (lambda d: d["stages"][1].update(width=64), "stages[1].width",
     "channels do not add up: this transition gets 72 channels (24 + 4 blocks * 12 of "
     "stages[0]) and compresses them to int(72 * 0.5) = 36, but its width is 64"),
    (lambda d: d["stages"][0].update(stride=2), "stages[0].stride", "concat shortcut keeps"),
    (lambda d: d["stages"][1].update(shortcut="projection"), "stages[1].shortcut",
     "a transition has no shortcut"),
    (lambda d: d["stages"][1].update(depth=2), "stages[1].depth", "one block"),
    (lambda d: d["stages"][0].update(blocks={1: {"shortcut": "projection"}}),
     "stages[0].blocks[1].shortcut", "keep the stage's block and shortcut"),
    (lambda d: d["stages"][0].pop("width"), "stages[0].width", "missing"),
    (lambda d: d["stages"][1].update(compression=0.001), "stages[1].compression", "keeps none"),
    (lambda d: d["stages"][0].update(compression=0.5), "stages[0].compression",
     "applies only to the 'transition' block"),
])
def test_dense_mistakes_say_where_and_what(edit, path, words):
    with pytest.raises(SpecError) as info:
        parse_spec(changed(edit))
    assert info.value.path == path and words in str(info.value)


def test_per_block_bottleneck_sizes_in_a_dense_stage():
    spec = parse_spec(changed(lambda d: d["stages"][0].update(blocks={2: {"bn_size": 2}})))
    assert spec.canonical()["stages"][0]["blocks"] == {"2": {"bn_size": 2}}
    assert [b.bn_size for b in spec.stages[0].block_settings()] == [4, 4, 2, 4]
