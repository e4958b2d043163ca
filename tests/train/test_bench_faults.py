"""Fault injection at the level of ``resbench bench``: a record copied over another, a
symlinked checkpoints folder, a finished suite on a read-only folder, a full disk."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resbench.cli import main
from resbench.errors import UserError
from resbench.store import Store
from resbench.train.suite import load_suite, run_suite

from ..conftest import REPO
from ..store.test_faults import NO_MOUNTS, needs_mounts
from .conftest import TINY_RECIPE, write_yaml


@pytest.fixture
def finished(tmp_path: Path, tiny_specs) -> tuple[Path, Path]:
    """A finished one-epoch suite of two trials: (suite file, results root)."""
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "done", "specs": ["specs/*.yaml"], "seeds": [0],
        "recipe": {**TINY_RECIPE, "epochs": 1}})
    results = tmp_path / "results"
    assert run_suite(load_suite(suite), results_root=results, progress="none").ran == 2
    return suite, results


def test_a_record_copied_over_another_stops_bench_until_it_is_set_aside(finished, capsys):
    suite, results = finished
    store = Store(results / "done")
    a, b = store.keys()
    shutil.copy(store.record_path(a), store.record_path(b))
    args = ["bench", str(suite), "--results", str(results), "--progress", "none"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {store.record_path(b)}: the record's key {a!r} is not its file name")
    assert "store check" in err and "Traceback" not in err

    assert main(["store", "check", str(results), "--move-aside"]) == 0
    capsys.readouterr()
    assert main(args) == 0
    assert "done: 1 trial(s) run, 1 already finished" in capsys.readouterr().out
    assert {r.key for r in store.records()} == {a, b}


def test_a_checkpoints_link_leading_out_of_the_results_folder_is_refused(finished, tmp_path):
    suite, results = finished
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(results / "done" / "checkpoints", ignore_errors=True)
    (results / "done" / "checkpoints").symlink_to(outside)
    with pytest.raises(UserError, match="'checkpoints' in experiment 'done' is a symlink"):
        run_suite(load_suite(suite), results_root=results, progress="none", seeds=(5,))
    assert list(outside.iterdir()) == []


def _bench_in_namespace(setup: str, suite: Path, results: Path, *extra: str, after: str = ""):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = (f"{setup} && {sys.executable} -m resbench.cli bench {suite} --results {results} "
               f"--progress none --threads 1 {' '.join(extra)}; rc=$?; {after or 'true'}; exit $rc")
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True,
                          env=env, cwd=suite.parent, timeout=180, check=False)


@needs_mounts
def test_bench_and_report_re_read_a_finished_suite_from_a_read_only_folder(finished, tmp_path):
    suite, results = finished
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in results.rglob("*") if p.is_file()}
    ro = f"mount --bind -o ro {results} {results}"
    done = _bench_in_namespace(ro, suite, results)
    assert done.returncode == 0, done.stderr
    assert "done: 0 trial(s) run, 2 already finished" in done.stdout
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    report = subprocess.run(["unshare", "-m", "sh", "-c",
                             f"{ro} && {sys.executable} -m resbench.cli report {results / 'done'} "
                             f"--out {tmp_path / 'report'}"],
                            capture_output=True, text=True, env=env, timeout=180, check=False)
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report" / "report.md").is_file()

    more = _bench_in_namespace(ro, suite, results, "--seeds 0 1")  # new work: one clear error
    assert more.returncode == 2 and "Traceback" not in more.stderr
    assert more.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot write to {results / 'done'}") and "Read-only file system" in more.stderr
    assert {p: (p.stat().st_mtime_ns, p.read_bytes())
            for p in results.rglob("*") if p.is_file()} == before


@needs_mounts
def test_bench_on_a_full_disk_is_one_clear_error_and_leaves_no_temp_file(tmp_path, tiny_specs):
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "full", "specs": ["specs/tiny_res.yaml"], "seeds": [0],
        "recipe": {**TINY_RECIPE, "epochs": 1}})
    results = tmp_path / "results"
    results.mkdir()
    # 8 KiB: the manifest fits (a few KiB), the trial's checkpoint (about 40 KiB) does not
    run = _bench_in_namespace(f"mount -t tmpfs -o size=8k tmpfs {results}", suite, results,
                              after=f"ls -aR {results}")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "No space left on device" in run.stderr and f"{results / 'full'}" in run.stderr
    assert ".tmp" not in run.stdout  # the listing of the full disk after the failure


def test_max_attempts_below_one_is_a_user_error(tmp_path, tiny_specs, capsys):
    args = ["bench", str(tiny_specs["res"]), "--results", str(tmp_path / "r"), "--max-attempts", "0"]
    assert main(args) == 2
    assert capsys.readouterr().err == "error: max attempts must be at least 1, got 0\n"
