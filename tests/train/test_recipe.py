"""Recipe validation, layering and precedence."""
from __future__ import annotations

from pathlib import Path

import pytest

from resbench.errors import SpecError
from resbench.spec import load_spec
from resbench.spec.recipe import Recipe, locate_layer, merge_layers, parse_recipe


def test_defaults_are_a_valid_recipe():
    recipe = parse_recipe(None)
    assert recipe == Recipe()
    assert recipe.optimizer.name == "sgd" and recipe.seeds == (0,)


@pytest.mark.parametrize("data, path, fragment", [
    ({"optimizer": {"name": "adam"}}, "recipe.optimizer.name", "did you mean 'adamw'"),
    ({"optimzer": {}}, "recipe.optimzer", "did you mean 'optimizer'"),
    ({"schedule": {"name": "cosine", "warmup": 1}}, "recipe.schedule.warmup", "warmup_epochs"),
    ({"precision": "fp8"}, "recipe.precision", "allowed: fp32, bf16, fp16"),
    ({"epochs": 0}, "recipe.epochs", "greater than or equal to 1"),
    ({"seeds": [1, 1]}, "recipe.seeds", "distinct"),
    ({"seeds": [0, "a"]}, "recipe.seeds[1]", "integer"),
    ({"schedule": {"milestones": [5, 2]}}, "recipe.schedule.milestones", "increasing"),
    ({"transfer": {"freeze": ["stem"], "unfreeze": {"layer1": 2}}}, "recipe.transfer", "not frozen"),
    ({"device": "tpu"}, "recipe.device", "allowed: auto, cpu, cuda"),
])
def test_errors_name_file_path_and_what_is_allowed(data, path, fragment):
    with pytest.raises(SpecError) as info:
        parse_recipe(data, file="suite.yaml")
    err = info.value
    assert err.file == "suite.yaml" and err.path == path
    assert fragment in str(err) and str(err).startswith(f"suite.yaml: {path}: ")


def test_a_recipe_must_be_a_mapping():
    with pytest.raises(SpecError, match="must be a mapping"):
        parse_recipe([1, 2], file="x.yaml")


def test_layers_merge_mappings_and_replace_the_rest():
    spec_layer = {"epochs": 5, "optimizer": {"name": "adamw", "lr": 0.01}, "seeds": [0, 1, 2]}
    suite_layer = {"optimizer": {"lr": 0.002}, "seeds": [7]}
    merged = parse_recipe(merge_layers(spec_layer, suite_layer, None, {"epochs": 3}))
    assert merged.epochs == 3  # the flags win
    assert merged.optimizer.name == "adamw" and merged.optimizer.lr == 0.002
    assert merged.seeds == (7,)  # lists are replaced, not merged


def test_layers_override_list_items_by_index_like_spec_bases():
    """Recipe layers and ``_base_`` share one merge: ``{1: 10}`` changes item 1 of a list."""
    merged = merge_layers({"grad_probe_steps": [0, 5, 50]}, {"grad_probe_steps": {1: 10}})
    assert parse_recipe(merged).grad_probe_steps == (0, 10, 50)
    with pytest.raises(SpecError) as info:
        merge_layers({"grad_probe_steps": [0]}, {"grad_probe_steps": {3: 1}}, file="s.yaml",
                     path="overrides[1]")
    assert info.value.file == "s.yaml" and info.value.path == "overrides[1].grad_probe_steps"
    assert "indices 0..0" in str(info.value)


def test_trial_dict_leaves_out_the_seeds():
    a = parse_recipe({"seeds": [0]}).trial_dict()
    b = parse_recipe({"seeds": [0, 1, 2]}).trial_dict()
    assert a == b and "seeds" not in a


def test_init_path_is_relative_to_the_declaring_file(tmp_path: Path):
    layer = locate_layer({"transfer": {"init": "w/r18.pt"}}, tmp_path / "specs" / "a.yaml")
    assert layer["transfer"]["init"] == str(tmp_path / "specs" / "w" / "r18.pt")
    assert locate_layer({"transfer": {"init": "/abs.pt"}}, tmp_path / "a.yaml")["transfer"]["init"] == "/abs.pt"


def test_a_spec_files_recipe_section_is_validated(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("stem: cifar\nshortcut: zero_pad\nstages: [{depth: 1, width: 16, stride: 1}]\n"
                    "recipe: {batch_sise: 4}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.path == "recipe.batch_sise" and info.value.suggestion == "batch_size"
