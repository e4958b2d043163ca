"""Kill a suite mid-run with SIGKILL, run it again: every trial ends up recorded exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from resbench.store import Store
from resbench.train.suite import load_suite, run_suite

from ..conftest import REPO
from .conftest import TINY_RECIPE, write_yaml


def test_sigkill_mid_suite_then_rerun_finishes_each_trial_once(tmp_path: Path, tiny_specs):
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "killed", "specs": ["specs/*.yaml"], "seeds": [0, 1],
        "recipe": {**TINY_RECIPE, "epochs": 6}})
    results = tmp_path / "results"
    trials = results / "killed" / "trials"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "resbench.cli", "bench", str(suite),
                             "--results", str(results), "--progress", "log"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not any(trials.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stdout.read().decode()  # still running: kill it mid-suite
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = {p.name: p.read_bytes() for p in trials.glob("*.json")}
    assert 1 <= len(first) < 4

    result = run_suite(load_suite(suite), results_root=results, progress="none")
    assert result.skipped == len(first) and result.ran == 4 - len(first)
    records = list(Store(results / "killed").records())
    assert len(records) == 4 == len({r.key for r in records})
    assert sorted((r.spec_name, r.seed) for r in records) == [
        ("tiny_plain", 0), ("tiny_plain", 1), ("tiny_res", 0), ("tiny_res", 1)]
    assert all(r.status == "completed" and len(r.curves) == 6 for r in records)
    for name, content in first.items():  # finished before the kill: not run again
        assert (trials / name).read_bytes() == content
    assert not list(trials.glob(".*.tmp"))
