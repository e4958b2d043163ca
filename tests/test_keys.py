"""Content keys are a stored, public identity: results folders on disk name their records by
trial key, and a rerun skips a trial only if it computes the same key again. These are the keys
resbench computed when they were pinned; a change to the canonical JSON, to the hash, or to what
a spec's or a recipe's canonical form holds shows up here before it orphans anyone's results."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace


from resbench.spec import parse_spec
from resbench.spec.recipe import Recipe, parse_recipe
from resbench.store import canonical_json, trial_key

# The library specs' own keys are pinned in tests/spec/test_keys.py.

# The degradation suite (run_bench.py's default) on digits: 1 channel, 10 classes, 16 pixels.
DEGRADATION_TRIAL_KEYS = {
    ("plain20", 0): "4676fdacf0a6feac",
    ("plain32", 0): "57757d2bbd837e30",
    ("plain44", 0): "016e41e71dafc3a2",
    ("plain56", 0): "879fef2484e293e5",
    ("resnet20", 0): "85c77036ea7abfbd",
    ("resnet32", 0): "c56e97d9d7257667",
    ("resnet44", 0): "f614b709e27f58b4",
    ("resnet56", 0): "563b0f4cd887540b",
    ("plain20", 1): "8bde144cd3c9e363",
    ("plain32", 1): "5f7f6044ba7bfa99",
    ("plain44", 1): "41c7d69c047ed441",
    ("plain56", 1): "8042e935681ecc81",
    ("resnet20", 1): "4215430a2ccd5c68",
    ("resnet32", 1): "906ddeee65cfcc65",
    ("resnet44", 1): "1aa47e6ac548b9c2",
    ("resnet56", 1): "962e392683e5ee03",
}

# Every kind of field: floats, per-stage overrides, shortcut options, a nested head.
RICH_SPEC = {
    "stem": {"kind": "deep", "width": 24}, "block": "preact_bottleneck", "groups": 2,
    "width_per_group": 32, "se_ratio": 0.25, "norm": "group", "activation": "silu",
    "stochastic_depth": 0.1, "zero_init_residual": True, "head": {"dropout": 0.3},
    "shortcut": "gated", "gate_bias": -2.5,
    "stages": [{"depth": 2, "width": 16},
               {"depth": 1, "width": 32, "stride": 2, "shortcut": "scaled", "scale": 0.25}],
}
RICH_RECIPE = {
    "epochs": 3, "label_smoothing": 0.1, "optimizer": {"name": "adamw", "lr": 3e-4},
    "schedule": {"name": "step", "milestones": [1.5, 2]},
    "data": {"name": "synthetic", "options": {"count": 96, "noise": 0.25}}, "seeds": [4, 5],
    "transfer": {"freeze": ["stem"], "unfreeze": {"stem": 2}},
}


def test_spec_and_trial_keys_of_every_kind_of_field_are_unchanged():
    spec = parse_spec(RICH_SPEC)
    assert spec.key() == "874ed4098c63be94"
    assert trial_key(spec.canonical(), parse_recipe(RICH_RECIPE).trial_dict(), 5) == "6c18cfc680640ce5"
    assert trial_key(spec.canonical(), Recipe().trial_dict(), 0) == "2629877522c361c5"


def test_degradation_suite_trial_keys_are_unchanged():
    """Results of ``python run_bench.py`` written before any change are skipped on a rerun."""
    from resbench.train.cli import DEFAULT_SUITE
    from resbench.train.suite import load_suite
    from resbench.train.trial import trial_identity

    digits = SimpleNamespace(in_channels=1, num_classes=10, image_size=16)
    keys = {(plan.spec.name, plan.seed): trial_identity(plan.spec, plan.recipe, plan.seed, digits)[1]
            for plan in load_suite(DEFAULT_SUITE).plans()}
    assert keys == DEGRADATION_TRIAL_KEYS


def test_canonical_json_text_is_unchanged():
    value = {"b": (1, 2.5), "a": Path("x/y"), "n": float("nan"), "u": "é", 3: True}
    assert canonical_json(value) == '{"3":true,"a":"x/y","b":[1,2.5],"n":null,"u":"\\u00e9"}'
