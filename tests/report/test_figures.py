"""Each figure draws the expected series, labels its axes with units, and is titled."""
from __future__ import annotations

import pandas as pd
import pytest

from resbench.report import figures, tables
from resbench.report.sections import Experiment, study_importances
from resbench.report.tables import NotAvailable
from resbench.store import Store, load, load_curves, load_grad_flow


@pytest.fixture(scope="module")
def data(results):
    folders = [results / "degradation", results / "space"]
    return tables.prepare(load(folders)), load_curves(folders), load_grad_flow(folders)


def _suite(trials):
    return trials[trials["experiment"] == "degradation"]


def _labelled(plot: figures.Plot) -> figures.Plot:
    """Every figure has a title and a one-sentence caption; every panel a title and axis labels."""
    assert plot.title and plot.caption.endswith(".") and "\n" not in plot.caption
    for ax in plot.figure.axes:
        if ax.get_visible():
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    return plot


def test_training_curves_one_line_per_spec_plus_each_unfinished_trial(data):
    trials, curves, _ = data
    plot = _labelled(figures.training_curves(trials, curves, "shortcut"))
    loss_ax, acc_ax = plot.figure.axes
    done = trials[trials["status"] == "completed"]
    specs = done.groupby(["experiment", "spec_key", "recipe_variant"]).ngroups
    unfinished_with_curves = 2  # plain20 seed 2 (diverged) and search trial 5 (pruned)
    assert len(loss_ax.get_lines()) == specs + unfinished_with_curves
    assert len(acc_ax.get_lines()) == specs + unfinished_with_curves
    styles = {line.get_linestyle() for line in loss_ax.get_lines()}
    assert {"-", "--", ":"} <= styles
    assert loss_ax.get_ylabel() == "training loss (cross-entropy, nats)"
    assert acc_ax.get_ylabel() == "validation accuracy (%)"
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["plain", "residual (projection)", "residual (zero_pad)", "diverged", "pruned"]


def test_training_curve_legend_names_every_line_of_a_suite(data):
    """He et al.'s Fig. 6: each line is a named net (plain-20, ResNet-20...), not only a colour."""
    trials, curves, _ = data
    suite = _suite(trials)
    plot = figures.training_curves(suite, curves, "shortcut")
    acc_ax = plot.figure.axes[1]
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["plain8", "plain14", "plain20", "resnet20-proj", "resnet8", "resnet14",
                      "resnet20", "diverged"]
    solid = [line for line in acc_ax.get_lines() if line.get_linestyle() == "-"]
    assert [line.get_label() for line in solid] == legend[:-1]
    assert len({line.get_color() for line in solid}) == 7  # shades of a colour by depth


def test_degradation_plain_and_residual_series(data):
    trials, _, _ = data
    plot = _labelled(figures.degradation(_suite(trials)))
    train_ax, val_ax = plot.figure.axes
    for ax in (train_ax, val_ax):
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["plain", "residual (projection)", "residual (zero_pad)"]
        assert len(ax.collections) == 3  # one ±std band per series
    plain = train_ax.get_lines()[0]
    assert list(plain.get_xdata()) == [8, 14, 20]
    suite = _suite(trials)
    p20 = suite[(suite["spec_name"] == "plain20") & (suite["status"] == "completed")]
    assert plain.get_ydata()[-1] == pytest.approx(100 * (1 - p20["final_train_acc"].mean()))
    assert train_ax.get_ylabel() == "final training error (%)"
    assert "He et al. 2015" in plot.caption and "1 diverged" in plot.caption


def test_degradation_needs_plain_nets_and_two_depths(data):
    trials, _, _ = data
    suite = _suite(trials)
    with pytest.raises(NotAvailable, match="plain network"):
        figures.degradation(suite[suite["shortcut"] != "none"])
    with pytest.raises(NotAvailable, match="single depth"):
        figures.degradation(suite[suite["depth"] == 20])


def test_gradient_flow_one_profile_per_spec(data):
    trials, _, grad = data
    plot = _labelled(figures.gradient_flow(trials, grad))
    (ax,) = plot.figure.axes
    specs = grad.merge(trials[["experiment", "key", "spec_key", "recipe_variant"]]).groupby(
        ["experiment", "spec_key", "recipe_variant"]).ngroups
    assert len(ax.get_lines()) == specs == 7
    plain20 = next(line for line in ax.get_lines() if line.get_label().startswith("plain20 "))
    assert len(plain20.get_xdata()) == 9  # 3 stages of 3 basic blocks
    # The profile drawn is the store's: per block, the mean norm over every plain20 trial's
    # probe steps (its seeds and the diverged run), input first.
    keys = trials[(trials["experiment"] == "degradation") & (trials["spec_name"] == "plain20")]["key"]
    rows = grad[grad["key"].isin(set(keys))]
    expected = rows.groupby("index")["grad_norm"].mean()
    assert list(plain20.get_xdata()) == list(expected.index) == list(range(9))
    assert list(plain20.get_ydata()) == pytest.approx(list(expected.values))
    assert rows["key"].nunique() == 3
    assert ax.get_yscale() == "log"


def test_pareto_points_and_front(data):
    trials, _, _ = data
    plot = _labelled(figures.pareto(trials, "params", "shortcut"))
    (ax,) = plot.figure.axes
    assert len(ax.collections) == 3  # plain, projection, zero_pad
    points = sum(len(c.get_offsets()) for c in ax.collections)
    done = trials[trials["status"] == "completed"]
    assert points == done.groupby(["experiment", "spec_key", "recipe_variant"]).ngroups
    assert len(ax.get_lines()) == 1 and ax.get_lines()[0].get_label() == "Pareto front"
    assert ax.get_xlabel() == "parameters (millions)"


def test_pareto_front_is_the_non_dominated_set():
    points = pd.DataFrame({"cost": [1, 2, 2, 3, 4, 5], "acc": [50, 60, 55, 58, 70, 70]})
    front = figures.pareto_front(points, "cost", "acc")
    assert front[["cost", "acc"]].values.tolist() == [[1, 50], [2, 60], [4, 70]]


def test_edf_one_curve_per_choice_value(data):
    trials, _, _ = data
    space = trials[trials["experiment"] == "space"]
    choices = ["search.params.block", "search.params.shortcut", "search.params.depth",
               "search.params.lr"]
    plot = _labelled(figures.edf(space, choices))
    axes = [ax for ax in plot.figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["block", "shortcut", "depth", "lr"]
    assert [len(ax.get_lines()) for ax in axes] == [2, 3, 4, 3]  # lr cut into 3 quantile bins
    done = space[space["status"] == "completed"]
    for ax in axes:
        assert sum(len(line.get_xdata()) - 1 for line in ax.get_lines()) == len(done)
        for line in ax.get_lines():
            assert line.get_ydata()[-1] == pytest.approx(1.0)
    assert "1 failed, 1 pruned" in plot.caption


def test_optimisation_history_marks_every_status(data):
    trials, _, _ = data
    space = trials[trials["experiment"] == "space"]
    plot = _labelled(figures.optimisation_history(space, "space"))
    (ax,) = plot.figure.axes
    labels = sorted(c.get_label() for c in ax.collections)
    assert labels == ["completed (12)", "failed (1)", "pruned (1)"]
    (best,) = ax.get_lines()
    done = space[space["status"] == "completed"].sort_values("search.trial_number")
    assert best.get_ydata()[-1] == pytest.approx(100 * done["best_val_acc"].max())
    assert list(best.get_ydata()) == sorted(best.get_ydata())


def test_optimisation_history_follows_a_minimised_objective(data):
    trials, _, _ = data
    space = trials[trials["experiment"] == "space"]
    plot = _labelled(figures.optimisation_history(space, "space", "macs", "minimize"))
    (ax,) = plot.figure.axes
    assert ax.get_ylabel() == "MACs per image (millions)"
    (best,) = ax.get_lines()
    done = space[(space["status"] == "completed")]
    assert best.get_ydata()[-1] == pytest.approx(done["macs"].min() / 1e6)
    assert list(best.get_ydata()) == sorted(best.get_ydata(), reverse=True)


def test_importances_of_a_multi_objective_study(tmp_path):
    """Importances follow the first objective, maximised: they equal those of a single-objective
    maximising study of the same values (PED-ANOVA minimises, so the target must be negated)."""
    import optuna

    from tests.report.fixtures import search_manifest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    multi = optuna.create_study(study_name="multi", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "minimize"])
    single = optuna.create_study(direction="maximize")
    dist = {"depth": optuna.distributions.IntDistribution(8, 56),
            "noise": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(16):  # accuracy rises with depth to 40; among deeper nets "noise" decides
        depth, noise = 8 + 3 * i, (i * 7 % 16) / 16
        acc = 0.5 + depth / 100 if depth < 40 else 0.9 - (depth - 40) / 100 + noise / 5
        params = {"depth": depth, "noise": noise}
        multi.add_trial(optuna.trial.create_trial(params=params, distributions=dist,
                                                  values=[acc, noise]))
        single.add_trial(optuna.trial.create_trial(params=params, distributions=dist, value=acc))
    exp = Experiment("multi", tmp_path, search_manifest("multi", "optuna", ("val_acc", "macs")))
    values, computed_by, note = study_importances(exp)
    reference = optuna.importance.get_param_importances(
        single, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
    assert values == pytest.approx(reference)
    assert values["noise"] > 0.3  # minimising accuracy instead would credit depth alone
    assert computed_by == "PED-ANOVA evaluator, for val_acc" and note == ""


def test_importances_from_the_optuna_study(results):
    store = Store(results / "space")
    values, evaluator, _ = study_importances(Experiment("space", store.path, store.read_manifest()))
    assert set(values) == {"block", "shortcut", "depth", "lr"}
    assert sum(values.values()) == pytest.approx(1.0)
    plot = _labelled(figures.importances(values, "space", evaluator))
    (ax,) = plot.figure.axes
    assert len(ax.patches) == 4
    assert ax.get_xlabel() == "importance (normalised, sums to 1)"


def test_saved_png_matches_figure(tmp_path, data):
    trials, _, _ = data
    plot = _labelled(figures.degradation(_suite(trials)))
    path = figures.save(plot, tmp_path)
    assert path == tmp_path / "degradation.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
