"""Report tables against the store's DataFrame, with the statistics recomputed by hand."""
from __future__ import annotations

import math
import statistics

import pandas as pd
import pytest

from resbench.report import tables
from resbench.store import load


@pytest.fixture(scope="module")
def trials(results):
    return tables.prepare(load([results / "degradation", results / "space"]))


def _close(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def test_leaderboard_csv_equals_store(report, trials):
    board = pd.read_csv(report.leaderboard_csv)
    assert len(board) == trials.groupby(["experiment", "spec_key", "recipe_variant"]).ngroups
    for _, row in board.iterrows():
        these = trials[(trials["experiment"] == row["experiment"])
                       & (trials["name"] == row["name"])]
        done = these[these["status"] == "completed"]
        assert row["trials"] == len(these) and row["completed"] == len(done)
        for metric in ("best_val_acc", "final_val_acc", "final_train_loss"):
            values = [float(v) for v in done[metric]]
            mean = statistics.fmean(values) if values else None
            std = statistics.stdev(values) if len(values) > 1 else None
            assert _close(row[f"{metric}_mean"], mean), (row["name"], metric)
            assert _close(row[f"{metric}_std"], std), (row["name"], metric)
        for field in ("block", "shortcut", "depth", "width"):
            assert str(row[field]) == str(these[field].iloc[0])
        if len(done):
            for metric in ("params", "macs", "latency_ms_b1", "images_per_s"):
                assert _close(row[metric], done[metric].iloc[0])
            assert row["epochs"] == done["epochs"].max()


def test_leaderboard_sorted_by_accuracy_with_unfinished_last(trials):
    board = tables.leaderboard(trials)
    accs = board["best_val_acc_mean"].tolist()
    finite = [a for a in accs if not math.isnan(a)]
    assert finite == sorted(finite, reverse=True)
    assert accs[: len(finite)] == finite
    # specs with no completed trial close the table: search trial 5 (pruned), 9 (failed)
    assert sorted(board["status"][len(finite):]) == ["failed 1", "pruned 1"]


def test_status_counts_keep_every_class(trials):
    counts = tables.status_counts(trials).set_index("experiment")
    assert list(counts.columns) == [*tables.STATUSES, "total"]
    assert counts.loc["degradation", "diverged"] == 1
    assert counts.loc["degradation", "failed"] == 1
    assert counts.loc["space", "pruned"] == 1
    assert counts.loc["space", "infeasible"] == 0
    assert counts["total"].sum() == len(trials)


def test_paired_ablation_of_shortcut_on_matched_seeds(trials):
    suite = trials[trials["experiment"] == "degradation"]
    pairs = tables.paired_ablations(suite)
    shortcut = pairs[(pairs["field"] == "shortcut") & (pairs["a"] == "none")
                     & (pairs["b"] == "zero_pad")].set_index("spec_a")
    assert sorted(shortcut.index) == ["plain14", "plain20", "plain8"]
    for depth in (8, 14, 20):
        plain = suite[(suite["spec_name"] == f"plain{depth}") & (suite["status"] == "completed")]
        res = suite[(suite["spec_name"] == f"resnet{depth}") & (suite["status"] == "completed")]
        deltas = [float(res[res["seed"] == s]["final_val_acc"].iloc[0])
                  - float(plain[plain["seed"] == s]["final_val_acc"].iloc[0]) for s in (0, 1)]
        row = shortcut.loc[f"plain{depth}"]
        assert row["seeds"] == 2  # plain20's diverged seed 2 has no partner and no result
        assert _close(row["delta_val_acc_mean"], statistics.fmean(deltas))
        assert _close(row["delta_val_acc_std"], statistics.stdev(deltas))
        assert row["b_wins"] == sum(d > 0 for d in deltas)
    # projection vs zero_pad at depth 20 share only seed 1 (seed 0 of the projection failed)
    proj = pairs[(pairs["field"] == "shortcut") & (pairs["b"] == "zero_pad")
                 & (pairs["a"] == "projection")]
    assert proj["seeds"].tolist() == [1] and math.isnan(proj["delta_val_acc_std"].iloc[0])
    depth = pairs[pairs["field"] == "depth"]
    assert len(depth) == 6  # 8-14, 8-20, 14-20 for plain and for zero_pad residual nets
    assert sorted(set(depth["a"]) | set(depth["b"])) == ["14 (2-2-2)", "20 (3-3-3)", "8 (1-1-1)"]


def test_paired_ablations_sorted_by_field_then_depth(trials):
    pairs = tables.paired_ablations(trials)
    keys = list(zip(pairs["field"], pairs["depth"]))
    assert len(pairs) > 1 and keys == sorted(keys)


def test_unfinished_rows_show_params_and_macs_known_before_training(trials):
    rest = tables.unfinished_trials(trials)
    assert {"params", "macs"} <= set(rest.columns)
    untrained = rest[rest["status"].isin(["pruned", "infeasible"])]
    assert len(untrained) and untrained["params"].gt(0).all() and untrained["macs"].gt(0).all()


def test_no_pair_across_recipes(trials):
    """Search trials with different learning rates are not paired on architecture alone."""
    space = trials[trials["experiment"] == "space"]
    pairs = tables.paired_ablations(space)
    assert len(pairs) >= 1  # trials 0 and 3: plain nets of depth 8 and 20 at lr 0.1
    assert set(pairs["spec_a"]) | set(pairs["spec_b"]) <= set(space["name"])
    assert all(name.startswith("space #") for name in space["name"])
    for _, row in pairs.iterrows():
        a = space[space["name"] == row["spec_a"]]["recipe.optimizer.lr"].iloc[0]
        b = space[space["name"] == row["spec_b"]]["recipe.optimizer.lr"].iloc[0]
        assert a == b


def test_one_architecture_under_two_recipes_is_two_rows(tmp_path):
    """A suite override (here the learning rate) is never averaged into the same row."""
    from resbench.store import Store
    from tests.report.fixtures import make_record, make_spec

    store = Store(tmp_path / "lr")
    spec = make_spec("plain8", "none", 8)
    for lr in (0.1, 0.02):
        for seed in (0, 1):
            store.write_record(make_record("lr", spec, seed, lr=lr))
    trials = tables.prepare(load(store.path))
    board = tables.leaderboard(trials).set_index("recipe_variant")
    assert sorted(board.index) == ["optimizer.lr=0.02", "optimizer.lr=0.1"]
    for lr in (0.1, 0.02):
        these = trials[trials["recipe.optimizer.lr"] == lr]
        row = board.loc[f"optimizer.lr={lr}"]
        assert row["completed"] == 2
        assert _close(row["best_val_acc_mean"], statistics.fmean(these["best_val_acc"]))
    assert tables.paired_ablations(trials).empty  # same architecture: nothing to ablate


def test_specs_that_also_differ_in_stem_width_are_not_paired(tmp_path):
    # A (basic, stem 16), B (basic, stem 64), C (bottleneck, stem 16): only A-C is a block
    # ablation; B-C differs in two fields.
    from resbench.store import Store
    from tests.report.fixtures import make_record, make_spec

    a = make_spec("a", "projection", 20)
    b = make_spec("b", "projection", 20).model_copy(update={"stem": a.stem.model_copy(update={"width": 64})})
    c = make_spec("c", "projection", 29, block="bottleneck")
    store = Store(tmp_path / "ablate")
    store.write_manifest({"name": "ablate", "kind": "suite"})
    for spec in (a, b, c):
        for seed in (0, 1):
            store.write_record(make_record("ablate", spec, seed))
    pairs = tables.paired_ablations(tables.prepare(load(tmp_path / "ablate")))
    block = pairs[pairs["field"] == "block"]
    assert list(zip(block["spec_a"], block["spec_b"])) == [("a", "c")]
