"""``resbench bench`` / ``run_bench.py``: leaderboard output, flags, clean errors."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from resbench.store import TrialRecord
from resbench.train import cli

from ..conftest import REPO
from .conftest import write_yaml


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_bench_runs_a_suite_and_prints_the_leaderboard(tiny_suite: Path, tmp_path: Path, capsys):
    args = parse([str(tiny_suite), "--results", str(tmp_path / "r"), "--epochs", "1",
                  "--seeds", "5", "--progress", "log", "--experiment", "quick"])
    assert cli.run(args) == 0
    out = capsys.readouterr().out
    assert "[1/2] tiny_plain seed=5 epoch 1/1: train_loss" in out
    assert "quick: 2 trial(s) run, 0 already finished" in out
    table = out[out.index("spec "):].splitlines()
    assert table[0].split()[:4] == ["spec", "shortcut", "depth", "seeds"]
    assert {line.split()[0] for line in table[2:]} == {"tiny_plain", "tiny_res"}
    records = list((tmp_path / "r" / "quick" / "trials").glob("*.json"))
    assert len(records) == 2


def test_flags_become_the_top_recipe_layer():
    args = parse(["--epochs", "3", "--lr", "0.5", "--limit", "100", "--device", "cpu"])
    assert cli.flags_layer(args) == {"epochs": 3, "device": "cpu", "optimizer": {"lr": 0.5},
                                     "data": {"limit": 100}}
    assert cli.flags_layer(parse([])) == {}


def test_the_default_suite_is_the_degradation_experiment():
    from resbench.train.suite import load_suite

    suite = load_suite(cli.DEFAULT_SUITE)
    assert suite.name == "degradation"
    names = sorted(e.spec.name for e in suite.entries)
    assert names == sorted(f"{kind}{d}" for kind in ("plain", "resnet") for d in (20, 32, 44, 56))
    plans = suite.plans()
    assert len({p.seed for p in plans}) >= 2 and len(plans) == 8 * len({p.seed for p in plans})
    assert {p.recipe.data.name for p in plans} == {"digits"}


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.yaml", "no such suite or spec file"),
    (lambda d: write_yaml(d / "bad.yaml", {"specs": ["x.yaml"], "recipe": {"epoch": 1}}),
     "bad.yaml: recipe.epoch: unknown field 'epoch'"),
])
def test_run_bench_reports_bad_input_without_a_traceback(tmp_path: Path, make, message):
    target = make(tmp_path)
    proc = subprocess.run([sys.executable, str(REPO / "run_bench.py"), str(target), "--results",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_progress_bars_on_a_terminal_and_log_lines_otherwise(capsys, monkeypatch):
    from resbench.train.progress import BarProgress, LogProgress, make_progress

    assert isinstance(make_progress("auto", total=2, done=0), LogProgress)  # pytest's stderr: no TTY
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = make_progress("auto", total=2, done=1)
    assert isinstance(bar, BarProgress)
    bar.trial_start("net seed=0", 1)
    metrics = {"train_loss": 0.5, "train_acc": 0.9, "val_acc": 0.8, "epoch_time_s": 1.0,
               "images_per_s": 10.0}
    assert bar.epoch_end(1, metrics) is False
    bar.trial_end(TrialRecord(key="k", experiment="e", spec_name="net", spec_key="s", seed=0,
                              status="diverged", reason="nan"))
    bar.close()
    captured = capsys.readouterr()
    assert "suite" in captured.err and "2/2" in captured.err and "net seed=0" in captured.err
    assert "net seed=0: diverged: nan" in captured.out
    with pytest.raises(ValueError, match="progress must be one of"):
        make_progress("fancy", total=1, done=0)


def test_run_bench_runs_a_suite_and_writes_its_report(tiny_suite: Path, tmp_path: Path):
    proc = subprocess.run([sys.executable, str(REPO / "run_bench.py"), str(tiny_suite), "--results",
                           str(tmp_path / "r"), "--epochs", "1", "--seeds", "0", "--progress", "log"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tiny: 2 trial(s) run" in proc.stdout and "tiny_res" in proc.stdout
    report = tmp_path / "r" / "tiny" / "report"
    assert (report / "report.md").is_file() and (report / "report.html").is_file()
    assert "tiny_res" in (report / "report.md").read_text()
