"""``resbench analyze`` on a real tiny finished suite: analyses added from the saved weights
without retraining, matching what the trials themselves measured."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from resbench.cli import main
from resbench.store import Store
from resbench.train import run_suite
from resbench.train.suite import load_suite

from .conftest import TINY_RECIPE, TINY_SPEC, write_yaml

CHEAP = {"lesion": {"draws": 1}, "landscape": {"points": 3, "grid": 3}}


def _suite(tmp_path: Path, name: str, recipe: dict) -> Path:
    specs = [write_yaml(tmp_path / "specs" / f"{n}.yaml", {**TINY_SPEC, "shortcut": s})
             for n, s in (("res", "zero_pad"), ("plain", "none"))]
    return write_yaml(tmp_path / f"{name}.yaml", {"name": name, "specs": [str(p) for p in specs],
                                                  "seeds": [0], "recipe": recipe})


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished suite whose trials ran with no analyses."""
    tmp = tmp_path_factory.mktemp("analyze")
    run_suite(load_suite(_suite(tmp, "plain_vs_res", TINY_RECIPE)), results_root=tmp / "results",
              progress="none")
    return tmp / "results"


def test_analyze_adds_analyses_from_saved_weights_and_keeps_everything_else(finished, capsys):
    folder = finished / "plain_vs_res"
    before = {p.name: json.loads(p.read_text()) for p in (folder / "trials").glob("*.json")}
    weights = {p.name: p.stat().st_mtime_ns for p in (folder / "weights").glob("*.pt")}
    assert main(["analyze", str(finished), "--analyses", "lesion,signal"]) == 0
    assert "analyzed 2 trials (lesion, signal)" in capsys.readouterr().out
    for record in Store(folder).records():
        old = before[f"{record.key}.json"]
        new = record.to_json()
        assert {k: v for k, v in new.items() if k != "analyses"} == old  # nothing else changed
        lesion = record.analyses.lesion
        # The intact net is the trained one: the trial's own last validation accuracy.
        assert lesion.val_acc == pytest.approx(record.metrics.final_val_acc)
        assert lesion.val_size == record.data.val_size
        assert len(lesion.blocks) == 2 and record.analyses.signal.rows
        assert record.analyses.shatter is None and record.analyses.landscape is None
    assert weights == {p.name: p.stat().st_mtime_ns for p in (folder / "weights").glob("*.pt")}
    # A second run finds them there and leaves the records as they are.
    assert main(["analyze", str(folder), "--analyses", "signal"]) == 0
    assert "analyzed 0 trials (signal); 2 already had them" in capsys.readouterr().out


def test_analyze_at_init_matches_what_the_trial_measured(tmp_path: Path):
    """signal and shatter rebuild the initial net from the record; it is the trial's own."""
    recipe = {**TINY_RECIPE, "epochs": 1, "analyses": ["signal", "shatter", CHEAP]}
    run_suite(load_suite(_suite(tmp_path, "measured", recipe)), results_root=tmp_path / "r",
              progress="none")
    folder = tmp_path / "r" / "measured"
    during = {r.key: r.analyses for r in Store(folder).records()}
    assert all(0 < r.metrics.analysis_time_s < r.metrics.total_time_s
               for r in Store(folder).records())
    assert all(a.lesion and a.signal and a.shatter and a.landscape for a in during.values())
    assert main(["analyze", str(folder), "--analyses", "signal,shatter,landscape,lesion",
                 "--redo"]) == 0
    for record in Store(folder).records():
        then, now = during[record.key], record.analyses
        assert now.signal == then.signal
        assert now.shatter == then.shatter
        # Default options now (a finer path and grid), but the same two ends: the initial net
        # rebuilt from the record and the saved weights are the trial's own.
        then_ends = {p.alpha: p.loss for p in then.landscape.path}
        now_ends = {p.alpha: p.loss for p in now.landscape.path}
        assert len(now_ends) > len(then_ends)
        for alpha in (0.0, 1.0):
            assert now_ends[alpha] == pytest.approx(then_ends[alpha], rel=1e-6)
        assert now.lesion.val_acc == then.lesion.val_acc
        assert now.lesion.blocks == then.lesion.blocks


def test_analyze_without_weights_says_so(tmp_path: Path, capsys):
    recipe = {**TINY_RECIPE, "epochs": 1, "save_weights": False}
    run_suite(load_suite(_suite(tmp_path, "noweights", recipe)), results_root=tmp_path / "r",
              progress="none")
    assert main(["analyze", str(tmp_path / "r"), "--analyses", "lesion"]) == 2
    err = capsys.readouterr()
    assert "no saved weights" in err.out
    assert err.err.startswith("error: ") and "none has saved weights" in err.err
    assert main(["analyze", str(tmp_path / "r"), "--analyses", "signal"]) == 0  # at init: fine
    assert main(["analyze", str(tmp_path / "r"), "--experiment", "nowieghts",
                 "--analyses", "signal"]) == 2
    assert "did you mean 'noweights'" in capsys.readouterr().err
