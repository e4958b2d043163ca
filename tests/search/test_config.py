"""One default-sampler rule, whichever way a search is configured (space file, flags, Python)."""
from __future__ import annotations

import argparse

import pytest

from resbench.search import SearchConfig, parse_objectives
from resbench.search.cli import add_arguments, config_from_args
from resbench.spec.space import parse_space
from tests.search.conftest import tiny_space


def from_flags(path, tmp_path, *flags: str) -> SearchConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args([str(path), "--results", str(tmp_path), *flags]))


@pytest.mark.parametrize("section, flags, expected", [
    ({}, (), "tpe"),
    ({"objectives": ["val_acc", "macs"]}, (), "nsga2"),
    ({}, ("--objective", "val_acc,params"), "nsga2"),
    ({"objectives": ["val_acc", "macs"]}, ("--objective", "val_acc"), "tpe"),
    ({"sampler": "random"}, ("--objective", "val_acc,macs"), "random"),
    ({}, ("--objective", "val_acc,macs", "--sampler", "tpe"), "tpe"),
])
def test_the_sampler_a_search_gets(write_space, tmp_path, section, flags, expected):
    path = write_space(tiny_space(search=section))
    assert from_flags(path, tmp_path, *flags).sampler == expected


def test_python_configs_follow_the_same_rule(tmp_path):
    space = parse_space(tiny_space(), file="space.yaml")
    two = parse_objectives(["val_acc", "macs"])
    config = SearchConfig(space=space, experiment="x", objectives=two, trials=4,
                          results_root=tmp_path)
    assert config.sampler == "nsga2" and config.manifest()["search"]["sampler"] == "nsga2"
    assert SearchConfig.from_space(space, results_root=tmp_path).sampler == "tpe"
