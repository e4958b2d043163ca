"""Claims on real processes: two benches on one folder train each trial once; a trial whose
runs are SIGKILLed is taken over as the next attempt, then recorded failed."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from resbench.store import Claims, Store
from resbench.store._claims import _process_start
from resbench.train.suite import load_suite, run_suite

from ..conftest import REPO
from .conftest import TINY_RECIPE, write_yaml

ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def bench(suite: Path, results: Path, *extra: str, log: Path | None = None) -> subprocess.Popen:
    """``resbench bench`` in a subprocess, its output piped (or written to ``log``)."""
    out = log.open("w") if log is not None else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "resbench.cli", "bench", str(suite),
                             "--results", str(results), "--progress", "log", "--threads", "1",
                             *extra], cwd=suite.parent, env=ENV, text=True,
                            stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture
def sleeper():
    """A live process other than this one, and its claim identity."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def plant_claim(claims: Claims, key: str, pid: int, attempt: int = 1, start: str | None = "") -> None:
    import platform

    claims.folder.mkdir(parents=True, exist_ok=True)
    claims.path(key).write_text(json.dumps({
        "pid": pid, "host": platform.node(), "attempt": attempt, "claimed_at": "t",
        "process_start": _process_start(pid) if start == "" else start}))


def test_claims_of_live_dead_zombie_and_reused_pids(tmp_path, sleeper):
    claims = Claims(tmp_path, max_attempts=3)
    first = claims.acquire("a")
    assert first.state == "claimed" and first.owner.attempt == 1 and first.owner.pid == os.getpid()
    assert Claims(tmp_path).acquire("a").state == "claimed"  # the same process again

    plant_claim(claims, "b", sleeper.pid)
    busy = claims.acquire("b")
    assert busy.state == "busy" and busy.owner.pid == sleeper.pid
    claims.release("b")  # never drops a live process's claim
    assert claims.path("b").exists()

    plant_claim(claims, "c", sleeper.pid, start="1")  # the pid was reused by another process
    assert claims.acquire("c").state == "claimed"

    sleeper.send_signal(signal.SIGKILL)  # killed, not yet reaped: a zombie
    wait_for(lambda: Path(f"/proc/{sleeper.pid}/stat").read_text().split(")")[-1].split()[0] == "Z")
    took = claims.acquire("b")
    assert took.state == "claimed" and took.owner.attempt == 2 and took.owner.pid == os.getpid()
    sleeper.wait()

    plant_claim(claims, "d", sleeper.pid, attempt=3)  # dead, and out of attempts
    exhausted = claims.acquire("d")
    assert exhausted.state == "exhausted" and exhausted.owner.attempt == 3
    claims.release("d")
    assert not claims.path("d").exists()

    claims.path("e").write_text('{"pid": 12')  # its writer died while writing it
    assert claims.acquire("e").owner.attempt == 2


def test_a_claims_link_leading_out_of_the_results_folder_is_refused(tmp_path):
    from resbench.errors import UserError

    (tmp_path / "outside").mkdir()
    (tmp_path / "results" / "exp").mkdir(parents=True)
    (tmp_path / "results" / "exp" / "claims").symlink_to(tmp_path / "outside")
    with pytest.raises(UserError, match="'claims' in experiment 'exp' is a symlink"):
        Claims(tmp_path / "results" / "exp").acquire("k")
    assert list((tmp_path / "outside").iterdir()) == []


@pytest.mark.slow
def test_two_bench_processes_train_each_trial_exactly_once(tmp_path, tiny_specs):
    """Two benches share a suite while this process holds one trial's claim: both train the
    other trials between them and wait for it; once it is released, exactly one trains it and
    the other picks up its record."""
    from resbench.train.trial import load_data, trial_identity

    epochs = 6
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "shared", "specs": ["specs/*.yaml"], "seeds": [0, 1],
        "recipe": {**TINY_RECIPE, "epochs": epochs}})
    results = tmp_path / "results"
    held = load_suite(suite).plans()[0]
    _, key = trial_identity(held.spec, held.recipe, held.seed, load_data(held.recipe.data))
    claims = Claims(results / "shared")
    assert claims.acquire(key).state == "claimed"  # a live process (this one) trains it
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    procs = [bench(suite, results, log=log) for log in logs]
    waiting = f"{held.label}: trained by pid {os.getpid()} "
    wait_for(lambda: all(waiting in log.read_text() for log in logs), timeout=240)
    claims.release(key)
    for proc in procs:
        proc.wait(timeout=240)
    outs = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0, 0], outs

    ran = [int(re.search(r"shared: (\d+) trial\(s\) run", out).group(1)) for out in outs]
    assert sum(ran) == 4, outs  # no trial ran twice
    epochs_seen = Counter(m.group(1) for out in outs
                          for m in re.finditer(r"\] (\S+ seed=\d) epoch \d+/", out))
    assert epochs_seen == {f"tiny_{s} seed={i}": epochs for s in ("plain", "res") for i in (0, 1)}
    assert sum(f"{held.label}: completed (recorded by the other process)" in out
               for out in outs) == 1
    records = list(Store(results / "shared").records())
    assert len(records) == 4 and all(r.status == "completed" and len(r.curves) == epochs
                                     and r.attempts is None for r in records)
    assert not list((results / "shared" / "claims").glob("*.json"))


@pytest.mark.slow
def test_a_trial_killed_twice_is_recorded_failed_and_the_suite_goes_on(tmp_path, tiny_specs):
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "oom", "specs": ["specs/tiny_res.yaml", "specs/tiny_plain.yaml"], "seeds": [0],
        "recipe": {**TINY_RECIPE, "epochs": 20}})
    results = tmp_path / "results"
    claims_dir = results / "oom" / "claims"
    checkpoints = results / "oom" / "checkpoints"
    def training(attempt: int, since: float) -> bool:
        """This attempt holds the claim and has written a checkpoint since it started."""
        try:
            held = [json.loads(c.read_text())["attempt"] for c in claims_dir.glob("*.json")]
        except (OSError, ValueError, KeyError):  # a claim being written
            return False
        return attempt in held and any(p.stat().st_mtime > since
                                       for p in checkpoints.glob("*/*.pt"))

    for attempt in (1, 2):  # the first trial is killed mid-training, twice (as an OOM kill does)
        since = time.time()
        proc = bench(suite, results)
        wait_for(lambda: training(attempt, since), proc)
        kill(proc)
        (claim,) = claims_dir.glob("*.json")
        assert json.loads(claim.read_text())["attempt"] == attempt
    key = claim.stem

    result = run_suite(load_suite(suite), results_root=results, progress="none")
    by_key = {r.key: r for r in result.records}
    failed = by_key.pop(key)
    assert failed.status == "failed" and failed.attempts == 2
    assert failed.reason.startswith("killed, likely out of memory: 2 run(s) ended without a record")
    (other,) = by_key.values()  # the suite went on past it
    assert other.status == "completed" and len(other.curves) == 20
    assert result.ran == 1 and not list(claims_dir.glob("*.json"))

    again = run_suite(load_suite(suite), results_root=results, progress="none")
    assert again.ran == 0  # a failed record is final unless --retry-failed


@pytest.mark.slow
def test_a_killed_trial_is_taken_over_as_the_next_attempt_and_resumes(tmp_path, tiny_specs):
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "again", "specs": ["specs/tiny_res.yaml"], "seeds": [0],
        "recipe": {**TINY_RECIPE, "epochs": 15}})
    results = tmp_path / "results"
    proc = bench(suite, results)
    wait_for(lambda: any((results / "again" / "checkpoints").glob("*/last.pt")), proc)
    kill(proc)
    result = run_suite(load_suite(suite), results_root=results, progress="none")
    (record,) = result.records
    assert record.status == "completed" and record.attempts == 2
    assert record.resumed_from_epoch >= 1 and len(record.curves) == 15
