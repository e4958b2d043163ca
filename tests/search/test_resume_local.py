"""Kill the local runner's driver mid-search (SIGKILL), resume it, and check the outcome: the
requested number of trials, no finished trial lost or trained again, and the interrupted trial
continued from its last epoch checkpoint."""
from __future__ import annotations

import optuna
import pytest

from resbench.cli import main
from resbench.search import SearchConfig
from resbench.search.optuna_study import DISCARDED, counted, open_study
from resbench.spec.space import load_space
from resbench.store import Store
from tests.search.conftest import tiny_space
from tests.search.killing import kill_when, snapshot, start_driver

pytestmark = pytest.mark.slow


def test_kill_and_resume_local(write_space, tmp_path):
    space = tiny_space(recipe={"epochs": 8, "data": {"name": "synthetic", "image_size": 8,
                                                     "options": {"count": 600, "num_classes": 4}}},
                       search={"sampler": "random", "pruner": "none", "trials": 5,
                               "experiment": "killed"})
    path = write_space(space)
    root = tmp_path / "results"
    folder = root / "killed"
    args = [str(path), "--results", str(root), "--sampler-seed", "0"]

    def mid_trial() -> bool:  # two trials done and a third past its first epoch
        done = list((folder / "trials").glob("*.json"))
        return len(done) >= 2 and any((folder / "checkpoints").glob("*/last.pt"))

    proc = start_driver(args, tmp_path / "driver.log")
    kill_when(proc, mid_trial, tmp_path / "driver.log")

    before = snapshot(folder / "trials")
    interrupted = {p.parent.name for p in (folder / "checkpoints").glob("*/last.pt")}
    assert len(before) >= 2 and len(interrupted) == 1
    cfg = SearchConfig.from_space(load_space(path), results_root=root)
    study = open_study(cfg, create=False)
    running = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(running) == 1  # left behind by the killed driver

    assert main(["search", *args]) == 2  # an existing study needs --resume
    assert main(["search", *args, "--resume", "--quiet"]) == 0

    study = open_study(cfg, create=False)
    trials = counted(study)
    assert len(trials) == 5 and all(t.state.is_finished() for t in trials)
    discarded = [t for t in study.get_trials() if t.user_attrs.get(DISCARDED)]
    assert [t.number for t in discarded] == [running[0].number]
    requeued = [t for t in trials if "requeued_from" in t.user_attrs]
    assert len(requeued) == 1 and requeued[0].params == running[0].params

    after = snapshot(folder / "trials")
    for name, text in before.items():
        assert after[name] == text, f"{name} was trained again"
    trained = [t.user_attrs["key"] for t in trials if not t.user_attrs.get("cached")]
    assert len(trained) == len(set(trained))  # nothing trained twice
    (key,) = interrupted
    record = Store(folder).read_record(key)
    assert record.status == "completed" and len(record.curves) == 8
    assert record.resumed_from_epoch >= 1  # continued from its checkpoint, not from scratch
    assert not any((folder / "checkpoints").glob("*/last.pt"))
