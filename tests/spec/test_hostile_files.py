"""Hostile spec files end in one located SpecError, in bounded time and memory: never a
RecursionError, a hang, gigabytes of error message, or a spec that validates and then fails."""
from __future__ import annotations

import json
import os
import time

import pytest

from resbench.errors import QUOTE_LIMIT, SpecError, shown
from resbench.spec import load_spec, parse_spec
from resbench.spec.load import MAX_BASE_CHAIN, MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, read_file
from resbench.spec.merge import merge

SPEC = "stem: cifar\nnum_classes: 10\nstages: [{depth: 1, width: 8}]\n"


def error_of(path) -> SpecError:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert time.perf_counter() - start < 5
    assert len(str(info.value)) < 5000  # every message is bounded
    return info.value


def billion_laughs(levels: int) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n"
    return text + f"stem: cifar\nstages: [{{depth: 1, width: *a{levels - 1}}}]\n"


@pytest.mark.parametrize("name, text, fragment", [
    ("deep.yaml", "a: " + "[" * 3000 + "]" * 3000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
    ("deep.yaml", "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)),
     "nested deeper than"),
    ("deep.json", '{"a": ' + "[" * 3000 + "]" * 3000 + "}", "nested deeper than"),
    ("deep.json", '{"a": "[[[[", "b": ' + "{}" * 5 + "}", "invalid JSON"),  # brackets in strings
    ("int.yaml", "num_classes: " + "9" * 5000 + "\n", "more than 4300 digits"),
    ("int.json", '{"num_classes": ' + "9" * 5000 + "}", "more than 4300 digits"),
    ("bomb.yaml", billion_laughs(9), f"expands to more than {MAX_VALUES:,} values"),
    ("loop.yaml", "a: &a [1, *a]\n", "recursive"),
    ("loop.yaml", "a: &a {b: *a}\n", "recursive"),
    ("dup.yaml", "stem: cifar\nstem: deep\nstages: [{depth: 1, width: 8}]\n",
     "duplicate key 'stem'"),
    ("dup.yaml", "stem: cifar\nstages: [{depth: 1, width: 8, depth: 2}]\n",
     "duplicate key 'depth'"),
    ("dup.json", '{"stem": "cifar", "stem": "deep", "stages": []}', "duplicate key 'stem'"),
    ("surrogate.json", '{"name": "a\\ud800", "stem": "cifar", "stages": [{"depth": 1, "width": 8}]}',
     "name: a lone UTF-16 surrogate"),
    ("surrogate.yaml", SPEC + 'description: "\\udc80"\n', "description: a lone UTF-16 surrogate"),
    ("surrogate.yaml", SPEC + 'recipe: {data: {options: {"\\ud800": 1}}}\n', "recipe.data.options"),
    ("date.yaml", SPEC.replace("num_classes: 10", "name: 2020-13-45"), "invalid YAML"),
    ("tag.yaml", SPEC + "description: !!timestamp x\n", "invalid YAML: not a timestamp: 'x'"),
    ("tag.yaml", "? !!set {a}\n", "invalid YAML"),
    ("nul.yaml", SPEC + "name: a\0b\n", "invalid YAML"),
    ("latin1.yaml", SPEC + "description: caf\xe9\n", "not UTF-8"),
    ("bool.yaml", "stem: cifar\nstages: [{depth: true, width: 8}]\n",
     "stages[0].depth: must be an integer, not a boolean, got True"),
])
def test_hostile_contents_are_located_spec_errors(tmp_path, name, text, fragment):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogatepass") if "\xe9" not in text
                     else text.encode("latin-1"))
    err = error_of(path)
    assert fragment in str(err), str(err)
    assert str(err).startswith(str(path))


def test_an_alias_bomb_inside_the_budget_is_quoted_in_a_bounded_message(tmp_path):
    path = tmp_path / "wide.yaml"
    path.write_text(billion_laughs(4))  # 9^4 = 6,561 values: under MAX_VALUES, so it loads
    err = error_of(path)
    assert "stages[0].width" in str(err) and "..." in str(err)
    assert len(str(err)) < 2000


@pytest.mark.parametrize("value, fragment", [
    ("x" * 10_000, "... (9800 more characters)"),
    (10**10_000, "<an integer of about 10001 digits>"),
    ([list(range(1000))] * 1000, "..."),
], ids=["long-text", "huge-int", "big-list"])
def test_quoted_values_are_bounded(value, fragment):
    text = shown(value)
    assert fragment in text and len(text) < QUOTE_LIMIT + 40
    err = parse_error({"stem": "cifar", "stages": [{"depth": 1, "width": value}]})
    assert fragment.split(" (")[0] in str(err) and len(str(err)) < 1000


def parse_error(data) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data, file="s.yaml")
    return info.value


def test_a_misspelt_key_is_named_first_then_every_other_problem(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("stem: cifar\nstagez: [{depth: 1, width: 8}]\nnorm: btach\n")
    err = error_of(path)
    lines = str(err).splitlines()
    assert lines[0].startswith(f"{path}: stagez: unknown field 'stagez'")
    assert lines[0].endswith("did you mean 'stages'?")
    assert lines[1:] == ["  also norm: unknown value 'btach'; did you mean 'batch'?",
                         "  also stages: required field is missing"]


def test_problems_beyond_the_bound_are_counted():
    err = parse_error({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                       **{f"bogus{i}": 1 for i in range(30)}})
    assert str(err).count("\n  also ") == 10 and str(err).endswith("(and 19 more problems)")


def test_spec_paths_that_are_not_regular_files_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it for reading would block forever
    assert "not a regular file" in str(error_of(fifo))
    device = tmp_path / "zero.yaml"
    device.symlink_to("/dev/zero")  # endless bytes
    assert "not a regular file" in str(error_of(device))
    (tmp_path / "folder.yaml").mkdir()
    assert "is a folder" in str(error_of(tmp_path / "folder.yaml"))


def test_files_over_the_size_limit_are_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(SPEC + "# " + "x" * MAX_FILE_BYTES + "\n")
    assert "at most 1 MiB" in str(error_of(path))


@pytest.mark.parametrize("base, fragment", [
    ("a\0b.yaml", "_base_ contains a NUL byte"),
    ("a" * 300 + ".yaml", "path component of 305 bytes"),
    ("x/" * 3000 + "a.yaml", "a path may have at most 4096"),
    (7, "_base_ must be a relative or absolute file path, got 7"),
    ("fifo.yaml", "not a regular file"),
])
def test_bad_base_paths_are_located_errors(tmp_path, base, fragment):
    os.mkfifo(tmp_path / "fifo.yaml")
    child = tmp_path / "child.json"
    child.write_text(json.dumps({"_base_": base, "num_classes": 3}))
    err = error_of(child)
    assert fragment in str(err), str(err)


def test_a_long_base_chain_is_refused_with_its_length(tmp_path):
    count = MAX_BASE_CHAIN + 20
    for i in range(count):
        (tmp_path / f"c{i}.yaml").write_text(f"_base_: c{i + 1}.yaml\n" if i < count - 1 else SPEC)
    err = error_of(tmp_path / "c0.yaml")
    assert f"_base_ chain is longer than {MAX_BASE_CHAIN} files" in str(err)
    (tmp_path / f"c{MAX_BASE_CHAIN - 1}.yaml").write_text(SPEC)  # a chain at the limit loads
    assert load_spec(tmp_path / "c0.yaml").num_classes == 10


def test_safe_yaml_still_loads_anchors_and_merge_keys(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("stem: cifar\nstages: [&s {depth: 1, width: 8}, *s, "
                    "{<<: *s, width: 16, stride: 2}]\n")
    assert [s.width for s in load_spec(path).stages] == [8, 8, 16]
    (tmp_path / "obj.yaml").write_text("!!python/object/apply:os.system [echo hi]\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        read_file(tmp_path / "obj.yaml")


@pytest.mark.parametrize("key", [True, 1.0, 1.9, "1.5", "x"])
def test_list_overrides_need_integer_indices(key):
    with pytest.raises(SpecError, match="integer indices 0..1"):
        merge({"stages": [{"depth": 1}, {"depth": 2}]}, {"stages": {key: {"depth": 5}}})
    assert merge([1, 2], {1: 5}) == merge([1, 2], {"1": 5}) == [1, 5]


@pytest.mark.parametrize("dist, fragment", [
    ({"$float": [0.01, 1.0], "step": float("nan")}, "step must be a positive number"),
    ({"$float": [0.01, 1.0], "step": float("inf")}, "step must be a positive number"),
    ({"$float": [float("nan"), 1.0]}, "needs finite bounds"),
    ({"$float": [0.01, float("inf")]}, "needs finite bounds"),
])
def test_search_ranges_must_be_finite(dist, fragment):
    from resbench.spec.space import parse_space

    with pytest.raises(SpecError, match=fragment):
        parse_space({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                     "recipe": {"optimizer": {"lr": dist}}}, file="space.yaml")


@pytest.mark.parametrize("seeds", [[2**70], [-1], [2**32]])
def test_seeds_are_32_bit(seeds):
    from resbench.spec.recipe import parse_recipe

    with pytest.raises(SpecError, match=r"recipe.seeds\[0\]"):
        parse_recipe({"seeds": seeds}, file="s.yaml", path="recipe")
    assert parse_recipe({"seeds": [0, 2**32 - 1]}).seeds == (0, 2**32 - 1)


def test_search_seeds_are_32_bit():
    from resbench.spec.space import parse_space

    with pytest.raises(SpecError, match=r"search.sampler_seed: sampler_seed must be an integer in"):
        parse_space({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                     "search": {"sampler_seed": 2**70}}, file="space.yaml")


def test_transfer_init_must_be_a_path():
    from resbench.spec.recipe import locate_layer

    with pytest.raises(SpecError, match=r"s.yaml: transfer.init: init contains a NUL byte"):
        locate_layer({"transfer": {"init": "a\0b.pt"}}, "s.yaml")


def test_data_root_must_be_a_path():
    from resbench.spec.recipe import parse_recipe

    with pytest.raises(SpecError, match=r"recipe.data.root: root contains a NUL byte"):
        parse_recipe({"data": {"root": "a\0b"}}, file="s.yaml", path="recipe")


# ----- a spec that validates must build ------------------------------------------------------

def test_a_deep_stem_of_odd_width_is_refused_at_load_time():
    err = parse_error({"stem": {"kind": "deep", "width": 33}, "stages": [{"depth": 1, "width": 8}]})
    assert err.path == "stem.width" and "must be even" in str(err)
    parse_spec({"stem": {"kind": "deep", "width": 32}, "stages": [{"depth": 1, "width": 8}]})


@pytest.mark.parametrize("stage, path", [
    ({"depth": 1, "width": 10**12}, "stages[0].width"),
    ({"depth": 1, "width": 10**18, "block": "bottleneck"}, "stages[0].width"),
    ({"depth": 1, "width": 64, "block": "bottleneck", "width_per_group": 10**15},
     "stages[0].width_per_group"),
    ({"depth": 1, "width": 2**19, "block": "bottleneck"}, "stages[0].width"),  # x4 expansion
    ({"depth": 1, "width": 512, "block": "bottleneck", "groups": 2**14, "width_per_group": 64},
     "stages[0].width_per_group"),
    ({"depth": 10**6, "width": 16}, "stages[0].depth"),
    ({"depth": 1, "width": 16, "stride": True}, "stages[0].stride"),
])
def test_sizes_beyond_any_network_are_refused(stage, path):
    err = parse_error({"stem": "cifar", "stages": [stage]})
    assert err.path == path, str(err)


def test_totals_are_bounded_too():
    err = parse_error({"stem": "cifar", "stages": [{"depth": 15_000, "width": 16}] * 2})
    assert err.path == "stages" and "30,000 blocks in all" in str(err)
    err = parse_error({"stem": "cifar", "stages": [{"depth": 1, "width": 16}] * 65})
    assert err.path == "stages"
    for field, value in (("num_classes", 2**30), ("input_size", 10**6), ("name", "n" * 201)):
        err = parse_error({"stem": "cifar", "stages": [{"depth": 1, "width": 16}], field: value})
        assert err.path == field


def test_the_deepest_and_widest_published_nets_still_validate():
    resnet1202 = parse_spec({"stem": "cifar", "shortcut": "zero_pad", "num_classes": 10,
                             "stages": [{"depth": 200, "width": w, "stride": 1 if i == 0 else 2}
                                        for i, w in enumerate((16, 32, 64))]})
    assert resnet1202.depth == 1202
    ten_thousand = parse_spec({"stem": "cifar", "stages": [{"depth": 1666, "width": 16}] * 3})
    assert ten_thousand.depth >= 9998
    bit_wide = parse_spec({"stem": "imagenet", "block": "bottleneck", "stages": [
        {"depth": 3, "width": 2048, "stride": 2}]})  # BiT R152x4's widest stage: 8192 channels
    assert bit_wide.stage_channels()[-1] == 8192


def test_field_paths_quote_long_keys_bounded():
    err = parse_error({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                       "recipe": {"k" * 50_000: 1}})
    assert err.path.startswith("recipe.kkk") and len(err.path) < 120
    assert len(str(err)) < 1000
