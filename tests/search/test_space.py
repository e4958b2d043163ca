"""Search spaces: parsing, validation errors (located like spec errors), sampling, grids."""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from resbench.errors import SpecError
from resbench.spec import space as sp
from resbench.spec.load import parse_spec
from resbench.spec.space import FixedSampler, load_space, parse_space

BASE = {
    "name": "tiny", "num_classes": 10, "input_channels": 1, "input_size": 8,
    "stem": {"kind": "cifar", "width": 8},
    "stages": [{"depth": 1, "width": 8, "stride": 1}, {"depth": 1, "width": 16, "stride": 2}],
}


class RandomSampler:
    """A plain random sampler implementing the space's Sampler protocol."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, name, values):
        return self.rng.choice(list(values))

    def int(self, name, lo, hi, step, log):
        return self.rng.randrange(lo, hi + 1, step)

    def float(self, name, lo, hi, step, log):
        return self.rng.uniform(lo, hi)


def space(**fields):
    return parse_space({**BASE, **fields}, file="space.yaml")


def test_distributions_and_names():
    s = space(block={"$choice": ["basic", "bottleneck"]},
              stages=[{"depth": {"$int": [1, 9], "step": 2}, "width": 8, "stride": 1},
                      {"depth": 1, "width": {"$int": [8, 64], "log": True}, "stride": 2}],
              recipe={"optimizer": {"lr": {"$float": [1e-3, 0.3], "log": True}}})
    names = [d.name for d in s.dists]
    assert sorted(names) == ["block", "recipe.optimizer.lr", "stages[0].depth", "stages[1].width"]
    d = {d.name: d for d in s.dists}
    assert (d["stages[0].depth"].lo, d["stages[0].depth"].hi, d["stages[0].depth"].step) == (1, 9, 2)
    assert d["stages[1].width"].log and d["recipe.optimizer.lr"].kind == "float"


def test_samples_are_valid_specs_and_replayable():
    s = space(block={"$choice": ["basic", "bottleneck"]},
              shortcut={"$choice": ["projection", "gated"]},
              groups={"$choice": [1, 2], "$when": {"block": "bottleneck"}},
              gate_bias={"$float": [-3.0, 0.0], "$when": {"shortcut": "gated"}},
              stages=[{"depth": {"$int": [1, 3]}, "width": 8, "stride": 1},
                      {"depth": {"$int": [1, 3]}, "width": 16, "stride": 2}],
              recipe={"epochs": {"$int": [1, 3]}})
    seen_blocks = set()
    for seed in range(30):
        spec, recipe, params = s.sample(RandomSampler(seed))
        parsed = parse_spec(spec)
        seen_blocks.add(parsed.block)
        # conditionals: present exactly when their condition holds
        assert ("groups" in params) == (spec["block"] == "bottleneck")
        assert ("gate_bias" in params) == (spec["shortcut"] == "gated")
        assert "groups" in spec or spec["block"] == "basic"
        assert recipe["epochs"] == params["recipe.epochs"]
        assert "recipe" not in spec
        again = s.sample(FixedSampler(params))
        assert again == (spec, recipe, params)
    assert seen_blocks == {"basic", "bottleneck"}


def test_when_on_a_stage_field_and_list_of_values():
    s = space(stages=[{"depth": 1, "width": 8, "stride": 1,
                       "block": {"$choice": ["basic", "bottleneck", "preact_bottleneck"]},
                       "groups": {"$choice": [1, 2],
                                  "$when": {"stages[0].block": ["bottleneck", "preact_bottleneck"]}}},
                      {"depth": 1, "width": 16, "stride": 2}])
    for seed in range(20):
        spec, _, params = s.sample(RandomSampler(seed))
        assert ("stages[0].groups" in params) == (spec["stages"][0]["block"] != "basic")
        assert ("groups" in spec["stages"][0]) == ("stages[0].groups" in params)


def test_when_falls_back_to_the_schema_default():
    # no `block` field at all: the default (basic) never matches bottleneck
    s = space(groups={"$choice": [1, 2], "$when": {"block": "bottleneck"}})
    spec, _, params = s.sample(RandomSampler(0))
    assert params == {} and "groups" not in spec
    # no optimizer given: the recipe's default (sgd) does match
    s = space(recipe={"optimizer": {"momentum": {"$float": [0.5, 0.95],
                                                 "$when": {"recipe.optimizer.name": "sgd"}}}})
    _, recipe, params = s.sample(RandomSampler(0))
    assert set(params) == {"recipe.optimizer.momentum"} and "momentum" in recipe["optimizer"]


@pytest.mark.parametrize("fields, path, words", [
    ({"block": {"$choice": []}}, "block", "non-empty"),
    ({"stochastic_depth": {"$float": [0.5, 0.1]}}, "stochastic_depth", "lo > hi"),
    ({"stages": [{"depth": {"$int": [1, 8], "step": 3}, "width": 8}]}, "stages[0].depth.step",
     "does not divide"),
    ({"stages": [{"depth": {"$int": [1, 8], "step": 0}, "width": 8}]}, "stages[0].depth.step",
     "positive"),
    ({"stochastic_depth": {"$float": [0.0, 0.5], "log": True}}, "stochastic_depth", "lo > 0"),
    ({"block": {"$choise": ["basic"]}}, "block", "unknown distribution key"),
    ({"block": {"$choice": ["basic"], "$int": [1, 2]}}, "block", "exactly one"),
    ({"block": {"$choice": ["basic"], "log": True}}, "block", "unknown option"),
    ({"name": {"$choice": ["a", "b"]}}, "name", "cannot be a distribution"),
    ({"description": {"$choice": ["a", "b"]}}, "description", "cannot be a distribution"),
    ({"search": {"trials": {"$int": [1, 3]}}}, "search", "cannot contain distributions"),
    ({"block": {"$choice": ["basic", "bottlenek"]}}, "block", "bottlenek"),
    ({"stages": [{"depth": {"$int": [0, 3]}, "width": 8}]}, "stages[0].depth", "value 0"),
    ({"recipe": {"epochs": {"$int": [0, 3]}}}, "recipe.epochs", "value 0"),
    ({"recipe": {"optimizer": {"name": {"$choice": ["sgd", "adam"]}}}}, "recipe.optimizer.name",
     "'adam'"),
    ({"colour": {"$choice": ["red"]}}, "colour", "unknown field"),
    ({"groups": {"$choice": [1, 2], "$when": {"block": []}}}, "groups.$when.block", "never match"),
    ({"groups": {"$choice": [1, 2], "$when": "bottleneck"}}, "groups.$when", "mapping"),
    ({"recipe": {"optimizer": {"lr": {"$float": [0.01, 0.1], "log": True, "step": 1}}}},
     "recipe.optimizer.lr.step", "cannot have a step"),
    ({"groups": {"$choice": [1, 2], "$when": {"blok": "bottleneck"}}}, "groups.$when.blok",
     "names no field"),
    ({"groups": {"$choice": [1, 2], "$when": {"block": "bottlenek"}}}, "groups.$when.block",
     "did you mean 'bottleneck'"),
    ({"recipe": {"epochs": {"$int": [1, 3], "$when": {"recipe.optimizer.nam": "sgd"}}}},
     "recipe.epochs.$when.recipe.optimizer.nam", "names no field"),
    ({"search": {"sampler": "tpee"}}, "search.sampler", "unknown sampler"),
    ({"search": {"pruner": "asha"}}, "search.pruner", "unknown pruner"),
    ({"search": {"constraints": {"max_flops": 10}}}, "search.constraints.max_flops", "unknown"),
    ({"search": {"trials": 0}}, "search.trials", "positive"),
    ({"search": {"budget": 3}}, "search.budget", "unknown field"),
])
def test_bad_spaces_are_located_spec_errors(fields, path, words):
    with pytest.raises(SpecError) as info:
        space(**fields)
    err = info.value
    assert err.file == "space.yaml"
    assert err.path == path, str(err)
    assert words in str(err), str(err)


def test_invalid_value_only_with_its_condition():
    # groups=2 is only valid with bottleneck blocks; the $when makes the space valid ...
    space(block={"$choice": ["basic", "bottleneck"]},
          groups={"$choice": [1, 2], "$when": {"block": "bottleneck"}})
    # ... and without it the value is rejected at load time, naming the field
    with pytest.raises(SpecError) as info:
        space(groups={"$choice": [1, 2]})
    assert info.value.path == "groups" and info.value.value == 2


def test_when_cycle_is_refused():
    with pytest.raises(SpecError, match="cycle"):
        space(block={"$choice": ["basic", "bottleneck"], "$when": {"shortcut": "projection"}},
              shortcut={"$choice": ["projection", "gated"], "$when": {"block": "basic"}})


def test_grid():
    s = space(block={"$choice": ["basic", "bottleneck"]},
              stages=[{"depth": {"$int": [1, 5], "step": 2}, "width": 8, "stride": 1}])
    assert s.grid() == {"block": ["basic", "bottleneck"], "stages[0].depth": [1, 3, 5]}
    assert s.grid_size() == 6
    cont = space(stochastic_depth={"$float": [0.0, 0.2]})
    with pytest.raises(SpecError, match="grid"):
        cont.grid()


def test_search_settings():
    s = space(search={"objectives": "val_acc, macs", "constraints": {"max_params": "2e5",
                                                                     "max_macs": 1.5e6},
                      "sampler": "nsga2", "pruner": "none", "trials": 7, "seed": 3,
                      "experiment": "x"})
    st = s.settings
    assert st.objectives == ("val_acc", "macs") and st.max_params == 200000
    assert st.max_macs == 1500000 and st.sampler == "nsga2" and st.pruner == "none"
    assert (st.trials, st.seed, st.experiment) == (7, 3, "x")
    assert "search" not in s.template


def test_load_space_with_base(tmp_path: Path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "recipe": {"epochs": 2}}))
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({
        "_base_": "base.yaml", "block": {"$choice": ["basic", "bottleneck"]},
        "search": {"trials": 3}}))
    s = load_space(tmp_path / "space.yaml")
    assert s.name == "space" and [d.name for d in s.dists] == ["block"]
    spec, recipe, _ = s.sample(RandomSampler(1))
    assert recipe == {"epochs": 2} and spec["stages"] == BASE["stages"]
    (tmp_path / "bad.yaml").write_text("block: {$int: [3, 1]}\n_base_: base.yaml\n")
    with pytest.raises(SpecError) as info:
        load_space(tmp_path / "bad.yaml")
    assert info.value.file.endswith("bad.yaml") and info.value.path == "block"


def test_example_spaces_load():
    files = sorted((Path(__file__).resolve().parents[2] / "specs" / "spaces").glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        s = load_space(path)
        assert s.dists, path
        s.sample(RandomSampler(0))


def test_space_module_imports_neither_torch_nor_optuna():
    code = ("import sys, resbench.spec.space; "
            "bad = [m for m in ('torch', 'optuna', 'ray') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("field", sp.FIXED_FIELDS)
def test_no_fixed_field_can_be_a_distribution(tmp_path: Path, field):
    """``name``, ``description``, ``_base_`` and ``search`` stay fixed in a space file."""
    assert set(sp.FIXED_FIELDS) == {"name", "description", "_base_", "search"}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**BASE, field: {"$choice": ["a.yaml", "b.yaml"]}}))
    with pytest.raises(SpecError) as info:
        load_space(path)
    assert info.value.path.split(".")[0] == field and info.value.file == str(path)
