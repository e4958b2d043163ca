"""One "unknown name" message wherever a user can misspell a name, and registries that are
filled by an explicit table, never by importing a module."""
from __future__ import annotations

import pytest

from resbench.errors import SpecError, UserError, unknown
from resbench.registry import Registry


def test_unknown_lists_the_names_and_suggests_the_closest():
    err = unknown("dataset", "cifar", ["cifar10", "digits"], file="s.yaml", path="recipe.data.name")
    assert isinstance(err, UserError) and err.exit_code == 2
    assert str(err) == ("s.yaml: recipe.data.name: unknown dataset 'cifar' (allowed: cifar10, "
                        "digits); did you mean 'cifar10'?")
    assert (err.value, err.allowed, err.suggestion) == ("cifar", ["cifar10", "digits"], "cifar10")
    assert str(unknown("norm", "layer", ["batch", "group"])) == \
        "unknown norm 'layer' (allowed: batch, group)"  # nothing close: no suggestion


def _dataset():
    from resbench.data import load_dataset

    load_dataset("digitz")


def _objective():
    from resbench.search.objectives import parse_objectives

    parse_objectives(["val_acc", "val_ac"])


def _spec_value():
    from resbench.spec import parse_spec

    parse_spec({"stem": "cifar", "shortcut": "projecton", "stages": [{"depth": 1, "width": 8}]})


def _space_sampler():
    from resbench.spec.space import parse_space

    parse_space({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                 "search": {"sampler": "randon"}})


def _norm_registry():
    from resbench.blocks import NORMS

    NORMS.get("btach")


@pytest.mark.parametrize("trigger, kind, name, suggestion", [
    (_dataset, "dataset", "digitz", "digits"),
    (_objective, "objective", "val_ac", "val_acc"),
    (_spec_value, "value", "projecton", "projection"),
    (_space_sampler, "sampler", "randon", "random"),
    (_norm_registry, "norm", "btach", "batch"),
])
def test_every_lookup_by_name_gives_the_same_message(trigger, kind, name, suggestion):
    with pytest.raises(SpecError) as info:
        trigger()
    text = str(info.value)
    assert f"unknown {kind} {name!r} (allowed: " in text
    assert suggestion in info.value.allowed
    assert text.endswith(f"; did you mean {suggestion!r}?")


def test_report_options_use_the_same_message(tmp_path):
    from resbench.report import _group_by

    import pandas as pd

    with pytest.raises(SpecError, match=r"^--group-by: unknown column of the results 'dept' "
                                        r"\(allowed: .*depth.*\); did you mean 'depth'\?$"):
        _group_by(pd.DataFrame({"depth": [20, 56], "key": ["a", "b"]}), "dept")


def test_a_registry_is_its_table_and_refuses_conflicts():
    def basic() -> str:
        return "basic"

    def other() -> str:
        return "other"

    reg: Registry = Registry("block", {"basic": basic})
    assert reg.names() == ["basic"] and reg.get("basic") is basic
    assert reg.register("basic", basic) is basic  # the same entry again: a no-op
    with pytest.raises(KeyError, match="already registered"):
        reg.register("basic", other)
    reg.register("other", other)
    assert list(reg) == ["basic", "other"] and "other" in reg


def test_importing_a_data_module_registers_nothing():
    """The data sets are the table in ``_datasets.py``; no module adds itself on import."""
    import importlib

    from resbench.data import DATASETS
    from resbench.data import _torchvision

    before = DATASETS.names()
    importlib.reload(_torchvision)
    assert DATASETS.names() == before
    assert DATASETS.get("cifar10").__module__ == "resbench.data._torchvision"
