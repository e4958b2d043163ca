"""The Ray Tune runner on a real local Ray session started here (shared by this module's tests):
constraint filtering, failures with retries, ASHA stops told to Optuna as pruned, GPU resources
limiting concurrency, and kill-and-resume of a driver attached with --address."""
from __future__ import annotations

import json
import time

import optuna
import pytest

from resbench.cli import main
from resbench.errors import UserError
from resbench.search import SearchConfig, run_search
from resbench.search.config import RayOptions
from resbench.search.optuna_study import counted, open_study
from resbench.spec.space import load_space
from resbench.store import Store
from tests.search.conftest import tiny_space
from tests.search.killing import kill_when, snapshot, start_driver

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
EXPECTED_STATE = {"completed": State.COMPLETE, "diverged": State.FAIL, "pruned": State.PRUNED,
                  "infeasible": State.PRUNED, "failed": State.FAIL}


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module: 2 CPUs and 2 declared (fake) GPUs."""
    import ray

    from resbench.search.ray_runner import _runtime_env

    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, runtime_env=_runtime_env())
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def ray_config(path, tmp_path, **kw) -> SearchConfig:
    kw.setdefault("progress", False)
    kw.setdefault("sampler_seed", 0)
    return SearchConfig.from_space(load_space(path), runner="ray",
                                   results_root=tmp_path / "results", **kw)


def check_optuna_agrees_with_records(cfg: SearchConfig) -> list:
    """Every counted Optuna trial is finished, in the state its record's status implies."""
    study = open_study(cfg, create=False)
    store = Store(cfg.path)
    trials = counted(study)
    by_number = {r.search.trial_number: r for r in store.records()}
    for t in trials:
        # a trial that failed before reporting has no key on the Optuna side: find it by number
        record = store.read_record(t.user_attrs["key"]) if "key" in t.user_attrs \
            else by_number[t.number]
        assert t.state == EXPECTED_STATE[record.status], (t.number, t.state, record.status)
        assert record.search.runner == "ray"
    return trials


def test_outcomes_infeasible_failed_completed(ray_session, write_space, tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    space = tiny_space(recipe={"epochs": 2, "transfer": {"init": {"$choice": [None, str(corrupt)]}}},
                       search={"sampler": "grid", "constraints": {"max_params": 2000}})
    cfg = ray_config(write_space(space), tmp_path, trials=8, retries=1)
    result = run_search(cfg)
    c = result.counts
    assert c["done"] == 8 and c["infeasible"] == 4 and c["failed"] == 2
    assert c.get("completed", 0) + c.get("pruned", 0) == 2 and result.best
    records = {r.key: r for r in Store(cfg.path).records()}
    failed = [r for r in records.values() if r.status == "failed"]
    assert len(failed) == 2
    for r in failed:
        assert "cannot load" in r.reason and r.attempts == 2  # tried, retried, recorded
    for r in records.values():
        if r.status == "infeasible":
            assert r.metrics.params > 2000 and not r.curves
    trials = check_optuna_agrees_with_records(cfg)
    assert len(trials) == 8


def test_a_trial_the_local_cluster_can_never_fit_is_refused(ray_session, write_space, tmp_path):
    # Ray would wait forever for a third GPU; the user gets an error naming the flag instead.
    cfg = ray_config(write_space(tiny_space()), tmp_path, trials=2,
                     ray=RayOptions(gpus_per_trial=3))
    with pytest.raises(UserError, match=r"asks for 3 GPU \(--gpus-per-trial\).*has 2"):
        run_search(cfg)


def test_gpu_resources_bound_concurrency_and_asha_prunes(ray_session, write_space, tmp_path):
    # Each trial asks for 1 of the 2 declared GPUs and a quarter CPU: the GPUs, not the CPUs,
    # must limit it to 2 trials at a time. Learning rates that cannot learn get stopped by ASHA.
    space = tiny_space(stages=[{"depth": {"$int": [1, 2]}, "width": 4, "stride": 1},
                               {"depth": 1, "width": {"$choice": [4, 8]}, "stride": 2}],
                       recipe={"epochs": 4, "optimizer": {"name": "sgd",
                               "lr": {"$float": [1.0e-7, 0.5], "log": True}},
                               "data": {"name": "synthetic", "image_size": 8,
                                        "options": {"count": 1500, "num_classes": 4}}},
                       search={"sampler": "random"})
    cfg = ray_config(write_space(space), tmp_path, trials=8,
                     ray=RayOptions(cpus_per_trial=0.25, gpus_per_trial=1))
    result = run_search(cfg)
    assert result.counts["done"] == 8
    trained = [r for r in Store(cfg.path).records() if r.status in ("completed", "pruned")]
    assert len(trained) == 8  # a continuous learning rate: no point comes twice
    for r in trained:
        assert len(r.search.ray.gpu_ids) == 1
    spans = [(r.search.ray.started, r.search.ray.finished) for r in trained]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running, peak = 0, 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2  # GPUs allowed two at once, never more
    pruned = [r for r in trained if r.status == "pruned"]
    assert pruned, "ASHA stopped no trial"
    for r in pruned:
        assert "stopped by the asha scheduler" in r.reason and 1 <= len(r.curves) < 4
    check_optuna_agrees_with_records(cfg)


def test_kill_driver_and_resume(ray_session, write_space, tmp_path):
    space = tiny_space(recipe={"epochs": 16, "data": {"name": "synthetic", "image_size": 8,
                                                      "options": {"count": 3000, "num_classes": 4}}},
                       search={"sampler": "random", "trials": 6, "experiment": "rkill"})
    path = write_space(space)
    root = tmp_path / "results"
    folder = root / "rkill"
    args = [str(path), "--runner", "ray", "--address", ray_session, "--results", str(root),
            "--sampler-seed", "0", "--scheduler", "none"]

    # Two trials recorded, another half-way, and a snapshot of Tune's state written since: Tune
    # snapshots each second (later on a loaded machine; once, a kill at epoch 8 came before any
    # snapshot held a checkpoint), so the kill waits for one taken after epoch 8 was reported.
    reached: list[float] = []

    def mid_search() -> bool:
        if len(list((folder / "trials").glob("*.json"))) < 2:
            return False
        tune_dir = folder / "ray" / "tune"
        if reached:
            return any(state.stat().st_mtime > reached[0]
                       for state in tune_dir.glob("experiment_state-*.json"))
        for log in tune_dir.glob("trial_*/result.json"):
            lines = log.read_text().splitlines()
            last = json.loads(lines[-1]) if lines and lines[-1].endswith("}") else {}
            if last.get("final") is False and last.get("epoch", 0) >= 8:
                reached.append(time.time())
        return False

    proc = start_driver(args, tmp_path / "driver.log")
    kill_when(proc, mid_search, tmp_path / "driver.log", timeout=240)
    before = snapshot(folder / "trials")
    cfg = ray_config(path, tmp_path)
    study = open_study(cfg, create=False)
    interrupted = {t.user_attrs.get("tune_trial_id") for t in study.get_trials()
                   if t.state == State.RUNNING}
    assert interrupted

    assert main(["search", *args]) == 2  # an existing search needs --resume
    assert main(["search", *args, "--resume", "--trials", "7"]) == 2  # Tune keeps its budget
    assert main(["search", *args, "--resume", "--quiet"]) == 0

    study = open_study(cfg, create=False)
    trials = counted(study)
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    # The restored searcher still knew the interrupted trials: no Tune trial got a second
    # Optuna trial, and those running at the kill that Tune's last snapshot held finished under
    # their original Optuna trial, continuing from their last checkpoint. (A trial started after
    # that snapshot is lost with the driver; its Optuna trial is discarded and not counted.)
    tune_ids = [t.user_attrs.get("tune_trial_id") for t in study.get_trials()]
    assert len([i for i in tune_ids if i]) == len({i for i in tune_ids if i})
    finished_ids = {t.user_attrs["tune_trial_id"] for t in trials}
    assert interrupted & finished_ids
    for t in study.get_trials():
        if t.user_attrs.get("tune_trial_id") in interrupted - finished_ids:
            assert t.user_attrs.get("discarded") == "interrupted"
    assert any(r.get("resumed_from_epoch", 0) >= 1 for r in Store(folder).records())
    after = snapshot(folder / "trials")
    for name, text in before.items():
        assert after[name] == text, f"{name} was trained again"
    trained = [t.user_attrs["key"] for t in trials if not t.user_attrs.get("cached")]
    assert len(trained) == len(set(trained))
    check_optuna_agrees_with_records(cfg)


def test_both_runners_write_the_same_records(ray_session, write_space, tmp_path):
    """The results store does not care which runner ran: same record fields, same DataFrame;
    and both runners search two objectives at once (a Pareto front)."""
    import logging
    import os

    from resbench.store import load

    space = tiny_space(recipe={"epochs": 1}, search={"sampler": "grid", "pruner": "none"})
    path = write_space(space)
    frames = {}
    env = dict(os.environ)
    levels = (optuna.logging.get_verbosity(),
              {name: logging.getLogger(name).level for name in ("ray.train", "optuna")})
    for runner in ("local", "ray"):
        cfg = SearchConfig.from_space(load_space(path), runner=runner, experiment=runner,
                                      trials=2, progress=False, sampler_seed=0,
                                      objectives="val_acc,macs",
                                      results_root=tmp_path / "results")
        result = run_search(cfg)
        assert result.counts["completed"] == 2
        assert result.best and all(set(b["values"]) == {"val_acc", "macs"} for b in result.best)
        records = list(Store(cfg.path).records())
        assert {r.search.runner for r in records} == {"optuna" if runner == "local" else "ray"}
        assert all((cfg.path / r.weights).is_file() for r in records)  # final weights kept
        frames[runner] = load(cfg.path)
    # Neither runner leaves a process-wide setting behind: log levels are as they were, and the
    # environment holds what it held (libraries may add their own defaults on first import,
    # e.g. torch's TORCHINDUCTOR_CACHE_DIR) and none of the variables resbench passes on.
    assert (optuna.logging.get_verbosity(),
            {name: logging.getLogger(name).level for name in ("ray.train", "optuna")}) == levels
    assert {k: os.environ.get(k) for k in env} == env
    assert not {"TUNE_GLOBAL_CHECKPOINT_S", "PYTHONPATH", "OMP_NUM_THREADS"} - set(env) \
        & set(os.environ)
    local, ray = frames["local"], frames["ray"]
    assert len(local) == len(ray) == 2
    extra = set(ray.columns) - set(local.columns)
    assert set(local.columns) <= set(ray.columns), set(local.columns) - set(ray.columns)
    assert all(c.startswith("search.ray") for c in extra), extra  # where and when it ran
    assert {"status", "best_val_acc", "search.runner", "search.trial_number"} <= set(local.columns)
