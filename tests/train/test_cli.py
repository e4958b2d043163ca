"""``resbench bench`` / ``run_bench.py``: leaderboard output, flags, clean errors."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from resbench.report import make_report
from resbench.report.sections import Table
from resbench.store import Store, TrialRecord
from resbench.train import cli
from tests.report.fixtures import write_suite

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
    # the report's leaderboard of the same folder: same rows in the same order, same numbers
    report = make_report([tmp_path / "r" / "quick"], tmp_path / "report")
    assert_same_rows(parse_table("\n".join(table)), report_leaderboard(report))


def parse_table(text: str) -> list[dict[str, str]]:
    """A terminal table back into rows, cutting each line at the columns the rule marks."""
    lines = text.strip("\n").splitlines()
    spans, start = [], 0
    for dashes in lines[1].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    cut = [[line[a:b].strip() for a, b in spans] for line in lines]
    return [dict(zip(cut[0], row)) for row in cut[2:] if any(row)]


def report_leaderboard(report) -> list[dict[str, str]]:
    [table] = [b for s in report.sections if s.id == "leaderboard" for b in s.blocks
               if isinstance(b, Table)]
    return table.frame.astype(str).to_dict("records")


def assert_same_rows(cli_rows: list[dict[str, str]], report_rows: list[dict[str, str]]) -> None:
    assert [r["spec"] for r in cli_rows] == [r["spec"] for r in report_rows]
    shared = set(cli_rows[0]) & set(report_rows[0])
    assert {"spec", "shortcut", "depth", "final train loss", "final val acc (%)",
            "best val acc (%)", "params (M)", "status"} <= shared
    for cli_row, report_row in zip(cli_rows, report_rows):
        assert {c: cli_row[c] for c in shared} == {c: report_row[c] for c in shared}


def test_leaderboard_is_the_reports_table_for_the_terminal(tmp_path: Path):
    """Plain and residual nets at three depths, two seeds, a diverged and a failed trial: the
    terminal shows the report's rows and order (best validation accuracy first) and its numbers,
    and the degradation columns the README shows (final train loss, train error, val acc)."""
    folder = write_suite(tmp_path / "results")
    records = list(Store(folder).records())
    text = cli.leaderboard(records)
    rows = parse_table(text)
    assert list(rows[0])[:4] == ["spec", "shortcut", "depth", "seeds"]
    assert {"final train loss", "train error (%)", "final val acc (%)"} <= set(rows[0])
    report = make_report([folder], tmp_path / "report")
    assert_same_rows(rows, report_leaderboard(report))
    board = pd.read_csv(report.leaderboard_csv)
    assert [r["spec"] for r in rows] == list(board["name"])
    by_spec = {r["spec"]: r for r in rows}
    plain20 = board.set_index("name").loc["plain20"]
    assert by_spec["plain20"]["seeds"] == "3" and by_spec["plain20"]["status"] == "completed 2, diverged 1"
    assert by_spec["plain20"]["train error (%)"] == (
        f"{100 * (1 - plain20['final_train_acc_mean']):.2f} ± {100 * plain20['final_train_acc_std']:.2f}")
    assert by_spec["resnet20-proj"]["status"] == "completed 1, failed 1"


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
