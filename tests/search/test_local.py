"""The local Optuna runner on tiny spaces with synthetic data: constraints, dedupe, pruning,
Pareto output, parallel workers, and the CLI."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest

from resbench._compat.optuna import stored_trial
from resbench.errors import SpecError, UserError
from resbench.search import SearchConfig, run_search
from resbench.search.optuna_study import counted, open_study
from resbench.spec.space import load_space
from resbench.store import Store, TrialRecord
from tests.search.conftest import tiny_space

pytestmark = pytest.mark.slow


def config(path: Path, tmp_path: Path, **kw) -> SearchConfig:
    kw.setdefault("progress", False)
    kw.setdefault("sampler_seed", 0)
    return SearchConfig.from_space(load_space(path), results_root=tmp_path / "results", **kw)


def records(cfg: SearchConfig) -> list[TrialRecord]:
    return list(Store(cfg.path).records())


def test_grid_constraints_and_dedupe(write_space, tmp_path):
    # expansion null and 1 resolve to the same basic-block net: 8 grid points, 4 architectures;
    # width 8 in the first stage breaks the parameter budget.
    space = tiny_space(expansion={"$choice": [None, 1]},
                       search={"constraints": {"max_params": 2000}, "sampler": "grid",
                               "pruner": "none"})
    cfg = config(write_space(space), tmp_path, trials=8)
    assert cfg.space.grid_size() == 8
    result = run_search(cfg)
    c = result.counts
    assert c["done"] == 8 and c.get("running", 0) == 0
    assert c["infeasible"] == 4 and c["completed"] == 4 and c["cached"] == 2
    recs = {r.key: r for r in records(cfg)}
    assert len(recs) == 4  # 2 trained + 2 infeasible architectures, each once
    for r in recs.values():
        assert r.search.runner == "optuna" and r.search.study == cfg.study_name
        if r.status == "infeasible":
            assert r.metrics.params > 2000 and r.curves == [] and "max_params" in r.reason
            assert r.spec["stages"][0]["width"] == 8
            assert r.weights is None
        else:
            assert r.status == "completed" and len(r.curves) == 3
            assert r.metrics.params <= 2000
            assert r.weights == f"weights/{r.key}.pt" and (cfg.path / r.weights).is_file()
    study = open_study(cfg, create=False)
    trials = counted(study)
    assert [t.number for t in trials] == list(range(8))
    keys = [t.user_attrs["key"] for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(keys) == 4 and len(set(keys)) == 2
    summary = json.loads((cfg.path / "search_summary.json").read_text())
    assert summary["counts"]["done"] == 8 and summary["best"][0]["key"] in recs
    manifest = json.loads((cfg.path / "manifest.json").read_text())
    assert manifest["kind"] == "search" and manifest["search"]["max_params"] == 2000


def test_pruning_records_curves_so_far(write_space, tmp_path):
    # Learning rates that can and cannot learn: successive halving stops the trials behind at a
    # rung after their first epochs; their records keep the curves so far.
    space = tiny_space(stages=[{"depth": {"$int": [1, 2]}, "width": 4, "stride": 1},
                               {"depth": 1, "width": 8, "stride": 2}],
                       recipe={"epochs": 4, "optimizer": {"name": "sgd",
                               "lr": {"$choice": [0.2, 1.0e-7]}}},
                       search={"sampler": "grid", "pruner": "sha"})
    path = write_space(space)
    cfg = config(path, tmp_path, trials=4, sampler_seed=3)
    result = run_search(cfg)
    assert result.counts["done"] == 4
    pruned = [r for r in records(cfg) if r.status == "pruned"]
    assert pruned, [r.status for r in records(cfg)]
    for r in pruned:
        assert 1 <= len(r.curves) < 4 and r.metrics.epochs == len(r.curves)
        assert r.reason == f"pruned by Optuna's sha pruner after epoch {len(r.curves)}"
    study = open_study(cfg, create=False)
    states = [t.state for t in counted(study)]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned)
    pruned_trial = next(t for t in counted(study) if t.state == optuna.trial.TrialState.PRUNED)
    assert pruned_trial.intermediate_values  # the per-epoch reports reached Optuna


def test_multi_objective_pareto(write_space, tmp_path):
    space = tiny_space(search={"objectives": ["val_acc", "params"], "trials": 6})
    cfg = config(write_space(space), tmp_path)
    assert cfg.sampler == "nsga2" and cfg.multi_objective and cfg.pruning_metric is None
    result = run_search(cfg)
    assert result.counts["done"] == 6
    front = result.best
    assert front
    done = [r for r in records(cfg) if r.status == "completed"]
    points = [(r.metrics.best_val_acc, r.metrics.params) for r in done]
    for row in front:
        acc, params = row["values"]["val_acc"], row["values"]["params"]
        dominated = any(a >= acc and p <= params and (a, p) != (acc, params) for a, p in points)
        assert not dominated
    summary = json.loads((cfg.path / "search_summary.json").read_text())
    assert len(summary["pareto_front"]) == len(front)


def test_parallel_workers_share_the_study(write_space, tmp_path):
    space = tiny_space(search={"sampler": "random", "pruner": "none"})
    cfg = config(write_space(space), tmp_path, trials=6, workers=2)
    result = run_search(cfg)
    assert result.counts["done"] == 6
    study = open_study(cfg, create=False)
    trials = counted(study)
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    # each record names the worker process of the trial that wrote it
    by_number = {t.number: t for t in trials}
    for r in records(cfg):
        assert r.search.worker == by_number[r.search.trial_number].user_attrs["worker"]


def test_existing_study_needs_resume(write_space, tmp_path):
    space = tiny_space(recipe={"epochs": 1}, search={"pruner": "none"})
    path = write_space(space)
    run_search(config(path, tmp_path, trials=2))
    with pytest.raises(UserError, match="--resume"):
        run_search(config(path, tmp_path, trials=2))
    # resuming a finished search of 2 trials to 3 runs exactly one more
    result = run_search(config(path, tmp_path, trials=3, resume=True))
    assert result.counts["done"] == 3
    # a worker joining a running search leaves the others' running trials alone
    cfg = config(path, tmp_path, trials=4)
    study = open_study(cfg, create=False)
    other = study.ask()  # another machine's trial, under way
    result = run_search(config(path, tmp_path, trials=5, join=True))
    assert result.counts["done"] == 4 and result.counts["running"] == 1
    assert stored_trial(study, other).state == optuna.trial.TrialState.RUNNING


def test_resuming_with_other_objectives_is_refused_and_changes_nothing(write_space, tmp_path):
    # Optuna would keep the stored direction and maximise MACs; the user gets an error instead.
    path = write_space(tiny_space(recipe={"epochs": 1}, search={"pruner": "none"}))
    first = config(path, tmp_path, trials=2)
    run_search(first)
    manifest = Store(first.path).read_manifest()
    for objectives in (("macs",), ("val_acc", "macs")):
        with pytest.raises(UserError, match="optimises val_acc, not"):
            run_search(config(path, tmp_path, trials=3, resume=True, objectives=objectives))
    assert Store(first.path).read_manifest() == manifest
    assert len(counted(open_study(first, create=False))) == 2


def test_bad_inputs(write_space, tmp_path):
    path = write_space(tiny_space(search={"objectives": ["val_acc", "flops"]}))
    with pytest.raises(SpecError) as info:
        config(path, tmp_path)
    assert info.value.path == "search.objectives[1]" and "macs" in str(info.value)
    cont = write_space(tiny_space(stochastic_depth={"$float": [0.0, 0.2]}), "cont.yaml")
    with pytest.raises(SpecError, match="grid"):
        config(cont, tmp_path, sampler="grid")
    with pytest.raises(UserError, match="invalid experiment name"):
        config(cont, tmp_path, experiment="../escape")


def test_sampled_point_the_schema_refuses_fails_loudly(write_space, tmp_path):
    # each value is valid alone; zero_pad cannot shrink 8 channels to 4
    space = tiny_space(stem={"kind": "cifar", "width": 8},
                       shortcut={"$choice": ["projection", "zero_pad"]},
                       search={"sampler": "grid", "pruner": "none"})
    space["stages"][0]["width"] = {"$choice": [8, 4]}
    cfg = config(write_space(space), tmp_path, trials=8)
    with pytest.raises(SpecError, match="sampled point is invalid"):
        run_search(cfg)


def test_cli_search(write_space, tmp_path, capsys):
    from resbench.cli import main

    path = write_space(tiny_space(recipe={"epochs": 2}))
    code = main(["search", str(path), "--trials", "3", "--results", str(tmp_path / "r"),
                 "--objective", "val_acc,macs", "--max-params", "2e5", "--experiment", "cli"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "cli: 3 trials" in out and "pareto front: #" in out
    assert "[cli] 3/3 done" in err  # the progress line
    assert len(list(Store(tmp_path / "r" / "cli").records())) >= 1
    bad = write_space({**tiny_space(), "block": {"$choice": []}}, "bad.yaml")
    assert main(["search", str(bad)]) == 2
    assert "block: $choice needs a non-empty list" in capsys.readouterr().err


def test_search_package_import_is_light():
    import subprocess

    code = ("import sys, resbench.search, resbench.search.cli; "
            "bad = [m for m in ('torch', 'ray', 'optuna') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_failing_trial_is_retried_then_recorded_and_search_goes_on(write_space, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    space = tiny_space(stages=[{"depth": 1, "width": 4, "stride": 1},
                               {"depth": 1, "width": 8, "stride": 2}],
                       recipe={"epochs": 1, "transfer": {"init": {"$choice": [str(corrupt), None]}}},
                       search={"sampler": "grid", "pruner": "none"})
    cfg = config(write_space(space), tmp_path, trials=2, retries=2)
    result = run_search(cfg)
    assert result.counts["failed"] == 1 and result.counts["completed"] == 1
    (failed,) = [r for r in records(cfg) if r.status == "failed"]
    assert failed.attempts == 3 and "cannot load" in failed.reason
    study = open_study(cfg, create=False)
    states = sorted(t.state.name for t in counted(study))
    assert states == ["COMPLETE", "FAIL"]
