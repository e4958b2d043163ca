"""Shortcut options are declared once, on the vocabulary: the schema's fields, defaults and
checks, the JSON Schema and the docs follow the declarations."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from resbench.errors import SpecError
from resbench.spec import Spec, StageSpec, json_schema, parse_spec
from resbench.spec.schema import STAGE_DEFAULTS
from resbench.spec.vocab import RESHAPING_SHORTCUTS, SHORTCUT_OPTIONS, SHORTCUTS, Option

ROOT = Path(__file__).resolve().parents[2]
CIFAR = {"num_classes": 10, "stem": "cifar", "shortcut": "projection",
         "stages": [{"depth": 1, "width": 16}, {"depth": 1, "width": 32, "stride": 2}]}


def error_of(data) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value


@pytest.mark.parametrize("option", sorted(SHORTCUT_OPTIONS))
def test_each_option_is_a_top_level_and_stage_field_with_its_description(option):
    kind, declared = SHORTCUT_OPTIONS[option]
    for model in (Spec, StageSpec):
        field = model.model_fields[option]
        assert field.default is None and declared.description in field.description
    assert option in STAGE_DEFAULTS
    schema = json_schema()
    for props in (schema["properties"], schema["$defs"]["StageSpec"]["properties"]):
        assert f"{kind!r} shortcut (default {declared.default!r})" in props[option]["description"]


@pytest.mark.parametrize("option", sorted(SHORTCUT_OPTIONS))
def test_each_option_gets_its_default_and_applies_only_to_its_kind(option):
    kind, declared = SHORTCUT_OPTIONS[option]
    assert {s.shortcut_options()[option] for s in
            parse_spec({**CIFAR, "shortcut": kind}).stages} == {declared.default}
    other = next(k for k in SHORTCUTS if k != kind and k in RESHAPING_SHORTCUTS)
    stages = [{**CIFAR["stages"][0], option: declared.default}, CIFAR["stages"][1]]
    err = error_of({**CIFAR, "shortcut": other, "stages": stages})
    assert err.path == f"stages[0].{option}"
    assert f"applies only to the {kind!r} shortcut" in str(err)
    assert error_of({**CIFAR, "shortcut": other, option: declared.default}).path == option
    # A top-level default reaches the stages of its kind and leaves the others alone.
    mixed = parse_spec({**CIFAR, option: declared.default, "stages": [
        {**CIFAR["stages"][0], "shortcut": kind}, {**CIFAR["stages"][1], "shortcut": other}]})
    assert [getattr(s, option) for s in mixed.stages] == [declared.default, None]
    assert mixed.stages[1].shortcut_options() == {
        name: getattr(mixed.stages[1], name) for name in SHORTCUTS[other].options}


def test_a_non_reshaping_kind_is_refused_where_the_shape_changes():
    for kind, info in SHORTCUTS.items():
        data = {**CIFAR, "shortcut": kind}
        if info.concatenates:
            continue  # keeps the resolution, adds channels (tests/spec/test_dense.py)
        if info.reshapes:
            assert parse_spec(data).stages[1].shortcut == kind
        else:
            err = error_of(data)
            assert err.path == "stages[1].shortcut" and "cannot change shape" in str(err)
            assert err.allowed == sorted(RESHAPING_SHORTCUTS)


def test_an_option_default_must_have_its_type():
    with pytest.raises(TypeError, match="not a float"):
        Option(float, "high", "a typo'd default")


def _rows(text: str, header: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(header) + 2  # skip the header and the |---| line
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def test_the_architecture_table_is_the_vocabulary():
    rows = _rows((ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8"),
                 "| kind | y = | where the shape changes | options (default) |")
    expected = []
    for kind, info in SHORTCUTS.items():
        options = ", ".join(f"`{name}` ({o.default!r})" for name, o in info.options.items())
        expected.append(f"| {kind} | {info.formula} | {info.reshaped} | {options} |"
                        .replace("|  |", "| |"))
    assert rows == expected


def test_the_readme_names_every_shortcut_kind_and_option():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `shortcut` |"))
    named = set(re.findall(r"`(\w+)`", row)) - {"shortcut"}
    assert named == set(SHORTCUTS) | set(SHORTCUT_OPTIONS)


@pytest.mark.parametrize("option", sorted(o for o, (_, d) in SHORTCUT_OPTIONS.items()
                                          if d.type is float))
def test_a_float_option_is_bounded_so_the_built_net_can_hold_it(option):
    """A float32 network cannot hold 1e300 as a bias or a factor (torch refuses it at the first
    forward): such a value is a located error of the spec, not a failed trial."""
    kind, declared = SHORTCUT_OPTIONS[option]
    assert declared.range is not None, f"{option} has no range"
    err = error_of({**CIFAR, "shortcut": kind, option: 1e300})
    assert err.path == option and "less than or equal to" in str(err)
    lo, hi = declared.range
    assert parse_spec({**CIFAR, "shortcut": kind, option: hi}).stages[0].shortcut_options()[
        option] == hi
