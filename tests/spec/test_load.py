"""The spec loader: files, inheritance, and errors that say what is wrong and where."""
from __future__ import annotations

import json

import pytest
import yaml

from resbench.errors import SpecError
from resbench.spec import load_spec, parse_spec

CIFAR56 = {
    "num_classes": 10,
    "stem": {"kind": "cifar", "width": 16},
    "block": "basic",
    "shortcut": "zero_pad",
    "stages": [
        {"depth": 9, "width": 16, "stride": 1},
        {"depth": 9, "width": 32, "stride": 2},
        {"depth": 9, "width": 64, "stride": 2},
    ],
}


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data)
    path.write_text(text)
    return path


def error_of(fn, *args) -> SpecError:
    with pytest.raises(SpecError) as info:
        fn(*args)
    return info.value


def test_yaml_and_json_load_to_the_same_spec(tmp_path):
    a = load_spec(write(tmp_path / "net.yaml", CIFAR56))
    b = load_spec(write(tmp_path / "net.json", CIFAR56))
    assert a == b
    assert a.name == "net" and a.depth == 56 and a.key() == b.key()


def test_stages_are_resolved_from_top_level_defaults():
    spec = parse_spec({**CIFAR56, "stages": [*CIFAR56["stages"][:2],
                                             {"depth": 9, "width": 64, "stride": 2,
                                              "shortcut": "projection"}]})
    assert [s.shortcut for s in spec.stages] == ["zero_pad", "zero_pad", "projection"]
    assert all(s.block == "basic" and s.expansion == 1 and s.groups == 1 for s in spec.stages)
    assert spec.summary_fields()["shortcut"] == "mixed"


def test_bottleneck_defaults_and_torchvision_width_convention():
    spec = parse_spec({"stem": "imagenet", "block": "bottleneck", "groups": 32,
                       "width_per_group": 4, "stages": [{"depth": 3, "width": 64}]})
    stage = spec.stages[0]
    assert stage.expansion == 4 and stage.out_channels == 256 and stage.inner_width == 128
    assert spec.stem.width == 64 and spec.input_size == 224 and spec.depth == 1 + 9 + 1


def test_base_inheritance_makes_an_ablation_a_three_line_file(tmp_path):
    write(tmp_path / "cifar" / "resnet56.yaml", CIFAR56)
    child = tmp_path / "ablations" / "resnet56_b.yaml"
    child.parent.mkdir()
    child.write_text("_base_: ../cifar/resnet56.yaml\nshortcut: projection\n")
    spec = load_spec(child)
    assert spec.name == "resnet56_b"  # the name is not inherited
    assert {s.shortcut for s in spec.stages} == {"projection"}
    assert [s.depth for s in spec.stages] == [9, 9, 9]


def test_list_items_override_by_index(tmp_path):
    write(tmp_path / "base.yaml", CIFAR56)
    child = tmp_path / "deeper.yaml"
    child.write_text("_base_: base.yaml\nstages: {2: {depth: 18}}\n")
    assert [s.depth for s in load_spec(child).stages] == [9, 9, 18]
    child.write_text("_base_: base.yaml\nstages: {5: {depth: 18}}\n")
    err = error_of(load_spec, child)
    assert err.path == "stages" and "0..2" in str(err)


def test_base_cycles_and_missing_bases_are_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\n")
    assert "cycle" in str(error_of(load_spec, tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("_base_: nowhere.yaml\n")
    err = error_of(load_spec, tmp_path / "c.yaml")
    assert err.path == "_base_" and "nowhere.yaml" in str(err) and str(tmp_path / "c.yaml") in str(err)


@pytest.mark.parametrize(
    ("mutation", "path", "fragment", "suggestion"),
    [
        ({"shortcut": "identiy"}, "shortcut", "allowed: identity, zero_pad", "identity"),
        ({"stem": "cifarr"}, "stem.kind", "allowed: cifar, imagenet, deep", "cifar"),
        ({"norm": "layer"}, "norm", "allowed: batch, group, none", None),
        ({"activaton": "gelu"}, "activaton", "unknown field", "activation"),
        ({"stages": [{"depth": 3, "width": 16, "strid": 2}]}, "stages[0].strid", "unknown field", "stride"),
        ({"stages": [{"depth": 0, "width": 16}]}, "stages[0].depth", "greater than 0", None),
        ({"stages": [{"width": 16}]}, "stages[0].depth", "missing", None),
        ({"stages": []}, "stages", "at least 1", None),
        ({"stochastic_depth": 1.5}, "stochastic_depth", "less than 1", None),
    ],
)
def test_bad_fields_name_the_path_the_value_and_what_is_allowed(mutation, path, fragment, suggestion):
    err = error_of(parse_spec, {**CIFAR56, **mutation}, "nets/bad.yaml")
    assert err.path == path
    assert fragment in str(err)
    assert str(err).startswith(f"nets/bad.yaml: {path}: ")
    assert err.suggestion == suggestion


def test_identity_shortcut_where_the_shape_changes_is_caught_before_building():
    err = error_of(parse_spec, {**CIFAR56, "shortcut": "identity"})
    assert err.path == "stages[1].shortcut"
    assert "16 to 32 channels with stride 2" in str(err) and "zero_pad" in err.allowed
    # The same net with identity only where shapes agree is fine.
    stages = [dict(s, shortcut="identity") if i == 0 else s for i, s in enumerate(CIFAR56["stages"])]
    assert parse_spec({**CIFAR56, "stages": stages}).stages[0].shortcut == "identity"


def test_zero_pad_cannot_drop_channels():
    stages = [{"depth": 1, "width": 64}, {"depth": 1, "width": 16, "stride": 2}]
    err = error_of(parse_spec, {**CIFAR56, "stages": stages})
    assert err.path == "stages[1].shortcut" and "only add channels" in str(err)


def test_options_of_other_kinds_are_refused():
    err = error_of(parse_spec, {**CIFAR56, "stages": [{"depth": 1, "width": 16, "scale": 0.5}]})
    assert err.path == "stages[0].scale" and "'scaled'" in str(err)
    err = error_of(parse_spec, {**CIFAR56, "gate_bias": -2.0})
    assert err.path == "gate_bias"
    err = error_of(parse_spec, {**CIFAR56, "groups": 32})
    assert err.path == "stages[0].groups" and "bottleneck" in str(err)


def test_gated_and_scaled_get_their_defaults_and_keep_given_values():
    spec = parse_spec({**CIFAR56, "shortcut": "gated", "gate_bias": -3.0})
    assert {s.gate_bias for s in spec.stages} == {-3.0} and {s.scale for s in spec.stages} == {None}
    spec = parse_spec({**CIFAR56, "shortcut": "scaled"})
    assert {s.scale for s in spec.stages} == {0.5}


def test_yaml_is_loaded_safely(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("stem: !!python/object/apply:os.system ['echo pwned']\nstages: []\n")
    err = error_of(load_spec, bad)
    assert "invalid YAML" in str(err) and str(bad) in str(err)


@pytest.mark.parametrize(("name", "text", "fragment"), [
    ("broken.yaml", "stem: [cifar\n", "line"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
    ("net.toml", "x = 1", "unsupported file type"),
    ("broken.json", "{", "invalid JSON"),
])
def test_unreadable_files(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_text(text)
    assert fragment in str(error_of(load_spec, path))


def test_missing_file():
    assert "file not found" in str(error_of(load_spec, "no/such/spec.yaml"))


def test_canonical_key_ignores_names_and_unused_defaults_but_not_architecture():
    a = parse_spec({**CIFAR56, "name": "a", "description": "x"})
    b = parse_spec({**CIFAR56, "name": "b", "groups": 1, "expansion": None})
    c = parse_spec({**CIFAR56, "shortcut": "projection"})
    assert a.key() == b.key() != c.key()
    assert "name" not in a.canonical() and "recipe" not in a.canonical()


def test_specs_are_frozen():
    spec = parse_spec(CIFAR56)
    with pytest.raises(Exception):
        spec.num_classes = 3  # type: ignore[misc]
    with pytest.raises(Exception):
        spec.stages[0].depth = 1  # type: ignore[misc]


def test_a_bottleneck_too_narrow_for_its_groups_is_refused():
    # Found by the property test: width 4 with width_per_group 8 leaves int(4 * 8 / 64) = 0 channels.
    err = error_of(parse_spec, {"stem": "imagenet", "block": "bottleneck", "width_per_group": 8,
                                "stages": [{"depth": 1, "width": 4}]})
    assert err.path == "stages[0].width_per_group" and "= 0" in str(err)
