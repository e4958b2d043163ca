"""Spec keys are part of every trial key in users' results folders: the library's keys and the
layout of the canonical form are pinned here (computed before shortcut options were declared on
the vocabulary), so a refactor that changes them fails."""
from __future__ import annotations

import pytest

from resbench.spec import load_spec, parse_spec
from resbench.spec.library import library_root
from resbench.spec.load import iter_spec_files
from resbench.spec.vocab import SHORTCUT_OPTIONS

LIBRARY_KEYS = {
    "ablations/resnet56_gated.yaml": "e847249abde47e39",
    "ablations/resnet56_option_a.yaml": "fdfc23f57ea81648",
    "ablations/resnet56_option_b.yaml": "c0e1a70edd23db13",
    "ablations/resnet56_option_c.yaml": "044aa9987468fe4d",
    "ablations/resnet56_plain.yaml": "2546131404ddb19b",
    "ablations/resnet56_scaled.yaml": "e30ff91e616346c2",
    "cifar/plain110.yaml": "b621503554144a69",
    "cifar/plain1202.yaml": "99e041587546ea7c",
    "cifar/plain20.yaml": "b5167a3f7878ec9c",
    "cifar/plain32.yaml": "a7f5936df1824b38",
    "cifar/plain44.yaml": "d26a0f0c02a7d456",
    "cifar/plain56.yaml": "2546131404ddb19b",
    "cifar/resnet110.yaml": "6fb38af70e27446e",
    "cifar/resnet1202.yaml": "332153e0aa16c030",
    "cifar/resnet20.yaml": "94bfe1a2edd2d5a3",
    "cifar/resnet32.yaml": "65f679344305ba09",
    "cifar/resnet44.yaml": "79369e5cabadb6c1",
    "cifar/resnet56.yaml": "fdfc23f57ea81648",
    "normfree/resnet110_fixup.yaml": "af57c6eaa7dd93d7",
    "normfree/resnet110_nf.yaml": "c00636030c3d567e",
    "normfree/resnet110_nonorm.yaml": "0281847cc88d7336",
    "normfree/resnet110_skipinit.yaml": "343d04b04b049601",
    "preact/highway56.yaml": "e847249abde47e39",
    "preact/preact_resnet1001.yaml": "60aec8a366bd7662",
    "preact/preact_resnet164.yaml": "1b747235cf0c33ff",
    "cifar/densenet_bc_100.yaml": "351b22b37c8c4a80",
    "densenet/densenet121.yaml": "b31b8c63963f0280",
    "densenet/densenet161.yaml": "4f7ebd3b97d05a8a",
    "densenet/densenet169.yaml": "074823293f660b90",
    "densenet/densenet201.yaml": "d5d9a14f60763701",
    "regnet/regnet_x_1_6gf.yaml": "e942e7c277ddfff7",
    "regnet/regnet_x_400mf.yaml": "84b2cf89f71b5012",
    "regnet/regnet_y_400mf.yaml": "2ad545d5923bfeb1",
    "regnet/regnet_y_800mf.yaml": "0c0e678b94b357d3",
    "timm/resnet26t.yaml": "0dee73a1f0923005",
    "torchvision/resnet101.yaml": "06402a7145391731",
    "torchvision/resnet152.yaml": "9fbee25dcd590401",
    "torchvision/resnet18.yaml": "03e40a6f1936b0bf",
    "torchvision/resnet34.yaml": "2532c708bad461d3",
    "torchvision/resnet50.yaml": "95ab035c3ad7759f",
    "torchvision/resnext50_32x4d.yaml": "e8bfa5feecb38141",
    "torchvision/wide_resnet50_2.yaml": "4a2bba29687ace1c",
}

CIFAR = {"num_classes": 10, "stem": "cifar", "shortcut": "zero_pad",
         "stages": [{"depth": 2, "width": 16}, {"depth": 2, "width": 32, "stride": 2}]}
# Options given at the top level, per stage, as ints, and as top-level defaults some stages
# do not use: each resolves differently, and each key was computed before the refactor.
OPTION_KEYS = [
    ({**CIFAR, "shortcut": "gated", "gate_bias": -3.0}, "c8bdcb1bd18efc2d"),
    ({**CIFAR, "shortcut": "gated", "gate_bias": -2}, "aef530ed931d9926"),
    ({**CIFAR, "shortcut": "scaled"}, "b7216db353ec12c2"),
    ({**CIFAR, "stages": [{"depth": 2, "width": 16, "shortcut": "scaled", "scale": 0.25},
                          {"depth": 2, "width": 32, "stride": 2}]}, "a2205b26122caf53"),
    ({**CIFAR, "gate_bias": -2.0, "stages": [{"depth": 2, "width": 16, "shortcut": "gated"},
                                             {"depth": 2, "width": 32, "stride": 2}]},
     "26185b5d97ce6407"),
    ({**CIFAR, "scale": 0.1, "stages": [
        {"depth": 2, "width": 16, "shortcut": "scaled"},
        {"depth": 2, "width": 32, "stride": 2, "shortcut": "gated", "gate_bias": 1.0}]},
     "31127f33bca3e4b9"),
]


def library() -> dict[str, str]:
    root = library_root()
    return {p.relative_to(root).as_posix(): load_spec(p).key()
            for p in iter_spec_files([root])}


def test_library_keys_are_unchanged():
    assert library() == LIBRARY_KEYS


@pytest.mark.parametrize(("data", "key"), OPTION_KEYS)
def test_keys_of_specs_with_shortcut_options_are_unchanged(data, key):
    assert parse_spec(data).key() == key


def test_canonical_fields_keep_their_order():
    """Records store the canonical form as written (not sorted), so its layout is public too."""
    canonical = load_spec(library_root() / "ablations" / "resnet56_gated.yaml").canonical()
    assert list(canonical) == ["input_channels", "num_classes", "input_size", "norm",
                               "activation", "zero_init_residual", "stochastic_depth", "stem",
                               "stages", "head"]
    assert list(canonical["stages"][0]) == ["depth", "width", "stride", "block", "shortcut",
                                            "groups", "width_per_group", "expansion", "se_ratio",
                                            "gate_bias", "scale"]
    assert canonical["stages"][0]["gate_bias"] == -1.0 and canonical["stages"][0]["scale"] is None


@pytest.mark.parametrize("option", sorted(SHORTCUT_OPTIONS))
def test_every_shortcut_option_is_part_of_the_key(option):
    kind, declared = SHORTCUT_OPTIONS[option]
    spec = parse_spec({**CIFAR, "shortcut": kind})
    assert {s.shortcut_options()[option] for s in spec.stages} == {declared.default}
    changed = next((c for c in declared.choices if c != declared.default), declared.default + 1)
    other = parse_spec({**CIFAR, "shortcut": kind, option: changed})
    assert other.key() != spec.key()
    assert parse_spec({**CIFAR, "shortcut": kind, option: declared.default}).key() == spec.key()
