"""The local runner at scale: its default storage (Optuna's journal file; an old experiment's
study.db kept), one driver per experiment (a live one refuses a second, a killed one's lock is
taken over), sampler seeds that never replay points across workers and resumes, and the refusal
of a pruner on several objectives."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resbench.cli import main
from resbench.errors import UserError
from resbench.search import SearchConfig, run_search
from resbench.search.config import derived_seed
from resbench.search.lock import DRIVER_LOCK, driver_lock
from resbench.search.optuna_study import counted, open_study
from resbench.spec.space import load_space, parse_space
from tests.search.conftest import tiny_space
from tests.search.killing import REPO

LR = {"$float": [1.0e-3, 0.3], "log": True}  # continuous: a replayed point is a repeated value


def lr_space(**search) -> dict:
    return tiny_space(recipe={"epochs": 1, "optimizer": {"name": "sgd", "lr": LR}},
                      search={"sampler": "random", "pruner": "none", **search})


def config(path: Path, tmp_path: Path, **kw) -> SearchConfig:
    kw.setdefault("progress", False)
    kw.setdefault("sampler_seed", 0)
    return SearchConfig.from_space(load_space(path), results_root=tmp_path / "results", **kw)


def points(cfg: SearchConfig) -> list[float]:
    return [t.params["recipe.optimizer.lr"] for t in counted(open_study(cfg, create=False))]


# ----- seeds ---------------------------------------------------------------------------------

def test_derived_seeds_are_the_seed_for_a_fresh_first_worker_and_distinct_otherwise():
    assert derived_seed(7, 0, 0) == 7 and derived_seed(None, 3, 5) is None
    seeds = {derived_seed(7, w, n) for w in range(4) for n in (0, 5, 9)}
    assert len(seeds) == 12 and all(0 <= s < 2**32 for s in seeds)
    assert derived_seed(7, 1, 5) == derived_seed(7, 1, 5)  # deterministic


@pytest.mark.slow
def test_seeded_resume_draws_new_points(write_space, tmp_path):
    path = write_space(lr_space())
    first = run_search(config(path, tmp_path, trials=3))
    assert first.counts["done"] == 3
    cfg = config(path, tmp_path, trials=6, resume=True)
    run_search(cfg)
    lrs = points(cfg)
    assert len(lrs) == 6 and len(set(lrs)) == 6  # the same seed once replayed the first 3
    # each record's cost, counted once by the candidate, is the adapted spec's cost
    from resbench.compile import cost
    from resbench.spec import parse_spec
    from resbench.store import Store

    for r in Store(cfg.path).records():
        c = cost(parse_spec(r.spec), input_size=r.data.image_size)
        assert (r.metrics.params, r.metrics.macs) == (c.params, c.macs)


@pytest.mark.slow
def test_seeded_parallel_workers_draw_distinct_points(write_space, tmp_path):
    cfg = config(write_space(lr_space()), tmp_path, trials=6, workers=2)
    assert run_search(cfg).counts["done"] == 6
    study = open_study(cfg, create=False)
    assert len({t.user_attrs["worker"] for t in counted(study)}) == 2
    lrs = points(cfg)
    assert len(lrs) == 6 and len(set(lrs)) == 6  # two workers with one seed drew the same ones


# ----- storage -------------------------------------------------------------------------------

@pytest.mark.slow
def test_default_storage_is_the_journal_and_an_old_study_db_resumes(write_space, tmp_path):
    path = write_space(lr_space())
    new = config(path, tmp_path, trials=2, experiment="new")
    assert new.storage_url == str(new.path / "study.journal")
    run_search(new)
    assert (new.path / "study.journal").is_file() and not (new.path / "study.db").exists()

    # an experiment made before the journal: its study.db stays its storage
    old = config(path, tmp_path, trials=2, experiment="old")
    db = f"sqlite:///{old.path / 'study.db'}"
    run_search(config(path, tmp_path, trials=2, experiment="old", storage=db))
    again = config(path, tmp_path, trials=4, experiment="old", resume=True)
    assert again.storage_url == db
    assert run_search(again).counts["done"] == 4
    assert not (old.path / "study.journal").exists()
    assert len(counted(open_study(again, create=False))) == 4


# ----- pruning with several objectives -------------------------------------------------------

def test_a_pruner_on_several_objectives_is_refused(write_space, tmp_path, capsys):
    space = parse_space(tiny_space(search={"objectives": ["val_acc", "params"]}), file="s.yaml")
    cfg = SearchConfig.from_space(space, results_root=tmp_path)
    assert cfg.pruner == "none" and cfg.manifest()["search"]["pruner"] == "none"
    assert SearchConfig.from_space(space, objectives="val_acc",
                                   results_root=tmp_path).pruner == "median"
    with pytest.raises(UserError, match="Optuna prunes single-objective studies only"):
        SearchConfig.from_space(space, pruner="median", results_root=tmp_path)
    stated = write_space(tiny_space(search={"objectives": ["val_acc", "macs"],
                                            "pruner": "hyperband"}))
    with pytest.raises(UserError, match="pruner 'hyperband' cannot be used"):
        SearchConfig.from_space(load_space(stated), results_root=tmp_path)
    path = write_space(tiny_space())
    code = main(["search", str(path), "--results", str(tmp_path), "--objective",
                 "val_acc,params", "--pruner", "median", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: pruner 'median' cannot be used")
    assert "Traceback" not in err


# ----- one driver per experiment -------------------------------------------------------------

def _hold_lock(folder: Path) -> subprocess.Popen:
    """A real process that takes the experiment's driver lock and keeps it."""
    code = ("import sys, time; from pathlib import Path; "
            "from resbench.search.lock import driver_lock\n"
            "with driver_lock(Path(sys.argv[1]), 'x'):\n"
            "    print('held', flush=True); time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_driver_refuses_a_second_and_a_killed_ones_lock_is_taken_over(tmp_path):
    folder = tmp_path / "exp"
    proc = _hold_lock(folder)
    try:
        with pytest.raises(UserError, match=rf"being run by another process \(pid {proc.pid} "):
            with driver_lock(folder, "exp"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with driver_lock(folder, "exp"):  # the kernel dropped the dead process's lock
        assert f'"pid": {os.getpid()}' in (folder / DRIVER_LOCK).read_text()
    assert (folder / DRIVER_LOCK).read_text() == ""  # released


@pytest.mark.slow
def test_resume_of_a_running_search_is_refused_and_leaves_it_running(write_space, tmp_path,
                                                                     capsys):
    from tests.search.killing import start_driver

    space = tiny_space(recipe={"epochs": 30, "data": {"name": "synthetic", "image_size": 8,
                                                      "options": {"count": 400,
                                                                  "num_classes": 4}}},
                       search={"sampler": "random", "pruner": "none", "trials": 2,
                               "experiment": "busy"})
    path = write_space(space)
    root = tmp_path / "results"
    args = [str(path), "--results", str(root), "--sampler-seed", "0", "--quiet"]
    log = tmp_path / "driver.log"
    proc = start_driver(args, log)
    try:
        deadline = time.monotonic() + 120
        while not list((root / "busy" / "checkpoints").glob("*/last.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert main(["search", *args, "--resume"]) == 2
        err = capsys.readouterr().err
        assert f"is being run by another process (pid {proc.pid}" in err, err
        assert proc.poll() is None  # the running search was not disturbed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert main(["search", *args, "--resume"]) == 0  # its lock died with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    cfg = config(path, tmp_path)
    trials = counted(open_study(cfg, create=False))
    assert len(trials) == 2 and all(t.state.is_finished() for t in trials)


def test_storage_flag_takes_a_journal_file_and_refuses_a_bare_path(tmp_path):
    from resbench.cli import build_parser

    journal = tmp_path / "shared.journal"
    args = build_parser().parse_args(["search", "s.yaml", "--storage", str(journal)])
    assert args.storage == str(journal)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "s.yaml", "--storage", str(tmp_path / "x.db")])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "s.yaml", "--storage", str(tmp_path / "no" / "x.journal")])
