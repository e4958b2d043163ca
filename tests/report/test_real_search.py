"""A report on what a real local Optuna search wrote: tiny nets on ``digits``, one epoch each.

The search sections (optimisation history, parameter importances, design-space EDFs) are drawn
from the records and the study the runner wrote, not from hand-made ones.
"""
from __future__ import annotations

import pandas as pd
import pytest
import yaml

from resbench.report import make_report, sections
from resbench.report.sections import Experiment, FigureRef, Missing
from resbench.search import SearchConfig, run_search
from resbench.spec.space import load_space
from resbench.store import Store, load

TRIALS = 6
SPACE = {
    "name": "digits_tiny", "stem": {"kind": "cifar", "width": 4}, "block": "basic",
    "shortcut": {"$choice": ["none", "zero_pad"]},
    "stages": [{"depth": {"$int": [1, 2]}, "width": {"$choice": [4, 8]}, "stride": 1}],
    "recipe": {"epochs": 1, "batch_size": 128, "grad_probe_steps": [], "latency_batch": 2,
               "optimizer": {"name": "sgd", "lr": {"$float": [0.01, 0.3], "log": True}},
               "data": {"name": "digits"}},
    "search": {"sampler": "tpe", "pruner": "none", "seed": 0, "sampler_seed": 0},
}
PARAMS = {"shortcut", "stages[0].depth", "stages[0].width", "recipe.optimizer.lr"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    root = tmp_path_factory.mktemp("real_search")
    space_file = root / "space.yaml"
    space_file.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    config = SearchConfig.from_space(load_space(space_file), results_root=root / "results",
                                     trials=TRIALS, progress=False)
    result = run_search(config)
    report = make_report([config.path], root / "report")
    return config, result, report


def test_the_search_sections_are_filled_from_the_real_search(searched):
    config, result, report = searched
    assert result.counts["done"] == TRIALS
    records = list(Store(config.path).records())
    assert {r.status for r in records} == {"completed"} and len(records) >= 2
    by_id = {s.id: s for s in report.sections}
    for section_id in ("overview", "leaderboard", "status", "curves", "pareto", "edf", "search"):
        assert by_id[section_id].unavailable is None, (section_id, by_id[section_id].unavailable)
    for section_id in ("edf", "search"):
        assert not [b for b in by_id[section_id].blocks if isinstance(b, Missing)], section_id
    drawn = {b.path.name for s in report.sections for b in s.blocks if isinstance(b, FigureRef)}
    name = config.experiment
    assert {f"history_{name}.png", f"importances_{name}.png", f"edf_{name}.png"} <= drawn


def test_importances_and_edf_choices_are_the_searched_parameters(searched):
    config, _, _ = searched
    exp = Experiment(config.experiment, config.path, Store(config.path).read_manifest())
    values, evaluator, _ = sections.study_importances(exp)
    assert set(values) <= PARAMS and values and all(v >= 0 for v in values.values())
    assert "val_acc" in evaluator
    trials = load(config.path)
    assert set(sections.design_choices(trials)) == {f"search.params.{p}" for p in PARAMS}
    assert sorted(trials["search.trial_number"]) == sorted(
        {r.search.trial_number for r in Store(config.path).records()})


def test_leaderboard_rows_are_the_searched_trials(searched):
    config, _, report = searched
    board = pd.read_csv(report.leaderboard_csv)
    records = {f"{r.spec_name} #{r.search.trial_number}": r for r in Store(config.path).records()}
    assert set(board["name"]) == set(records)
    for _, row in board.iterrows():
        assert row["best_val_acc_mean"] == pytest.approx(records[row["name"]].metrics.best_val_acc)
    assert list(board["best_val_acc_mean"]) == sorted(board["best_val_acc_mean"], reverse=True)
