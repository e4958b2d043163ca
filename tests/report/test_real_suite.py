"""A report on results a real suite wrote: plain and residual tiny nets trained on `synthetic`."""
from __future__ import annotations

import pandas as pd
import pytest

from resbench.report import make_report
from resbench.report.sections import FigureRef
from resbench.store import load
from resbench.train.suite import load_suite, run_suite
from tests.train.conftest import TINY_RECIPE, TINY_SPEC, write_yaml


@pytest.fixture(scope="module")
def suite_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    deeper = {"stages": {0: {"depth": 3}}}
    for name, spec in {"res_a.yaml": TINY_SPEC, "plain_a.yaml": {**TINY_SPEC, "shortcut": "none"},
                       "res_b.yaml": {"_base_": "res_a.yaml", **deeper},
                       "plain_b.yaml": {"_base_": "plain_a.yaml", **deeper}}.items():
        write_yaml(root / "specs" / name, spec)
    suite = write_yaml(root / "suite.yaml", {"name": "tiny_real", "specs": ["specs/*.yaml"],
                                             "seeds": [0, 1], "recipe": TINY_RECIPE})
    result = run_suite(load_suite(suite), results_root=root / "results", progress="none")
    report = make_report([result.experiment_dir], root / "report")
    return result, report


def test_every_section_a_suite_can_fill_is_filled(suite_report):
    result, report = suite_report
    assert result.ran == 8 and {r.status for r in result.records} == {"completed"}
    by_id = {s.id: s for s in report.sections}
    for section in ("overview", "leaderboard", "status", "curves", "degradation",
                    "gradient_flow", "pareto", "ablations"):
        assert by_id[section].unavailable is None, (section, by_id[section].unavailable)
    # A suite is no search: those sections say why instead of vanishing.
    assert by_id["edf"].unavailable and by_id["search"].unavailable
    drawn = {b.path.name for s in report.sections for b in s.blocks if isinstance(b, FigureRef)}
    assert {"training_curves.png", "degradation.png", "gradient_flow.png"} <= drawn


def test_leaderboard_numbers_equal_the_store(suite_report):
    result, report = suite_report
    trials = load(result.experiment_dir)
    board = pd.read_csv(report.leaderboard_csv).set_index("name")
    assert len(board) == 4
    for name, group in trials.groupby("spec_name"):
        row = board.loc[name]
        assert row["best_val_acc_mean"] == pytest.approx(group["best_val_acc"].mean())
        assert row["best_val_acc_std"] == pytest.approx(group["best_val_acc"].std(ddof=1))
        assert row["final_train_loss_mean"] == pytest.approx(group["final_train_loss"].mean())
        assert row["params"] == group["params"].iloc[0]
