"""README's cluster recipe for real: a head started with the ``ray start --head`` command (its
own process group, temp dir and port, on loopback) with a token on the machine, so Ray turns
token authentication on; ``resbench search --runner ray --address`` attaches to it, is stopped
with Ctrl-C (exit 130) and with SIGKILL, resumes, and the store, the Optuna study, Ray Tune and
the command's summary agree. Every attach failure is one ``error:`` line with exit 2."""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ray.tune import ExperimentAnalysis

from resbench.report import tables
from resbench.search.optuna_study import counted, open_study
from resbench.search.ray_runner import experiment_analysis
from resbench.store import Store, load
from tests.conftest import REPO
from tests.search.conftest import tiny_space
from tests.search.killing import snapshot
from tests.search.test_ray import check_optuna_agrees_with_records, ray_config

pytestmark = pytest.mark.slow
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """``ray start --head --block`` on loopback; yields (address, environment for drivers)."""
    tmp = tmp_path_factory.mktemp("head")
    home = tmp / "home"  # this machine's token, as the first local ray.init() leaves it
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(16))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    port = free_port()
    log = tmp / "head.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(RAY), "start", "--head", "--block", f"--port={port}",
             "--node-ip-address=127.0.0.1", "--num-cpus=2", f"--temp-dir={tmp / 'ray'}",
             "--include-dashboard=false", "--disable-usage-stats",
             f"--dashboard-agent-listen-port={free_port()}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        # What `ray start` says: token authentication is on for this cluster.
        assert "Token authentication is enabled for this Ray cluster" in log.read_text()
        yield f"127.0.0.1:{port}", env
    finally:
        proc.terminate()  # `ray start --block` stops its node's processes on SIGTERM
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of this head's group left behind
        except ProcessLookupError:
            pass


def resbench(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "resbench", *args], cwd=log.parent,
                                env=env, stdout=out, stderr=subprocess.STDOUT)


def test_attach_failures_are_one_error_line(head, tmp_path, write_space):
    address, env = head
    path = write_space(tiny_space())
    base = ["search", str(path), "--runner", "ray", "--results", str(tmp_path / "r"), "--quiet"]
    other = {k: v for k, v in env.items() if k != "HOME"}
    (tmp_path / "empty").mkdir()
    cases = {  # address, environment, what the message says
        "closed": (f"127.0.0.1:{free_port()}", env, "no Ray cluster answers there"),
        "malformed": ("localhost", env, "expected HOST:PORT"),
        "wrong_token": (address, {**env, "RAY_AUTH_TOKEN": secrets.token_hex(16)},
                        "refused this machine's authentication token"),
        "no_token": (address, {**other, "HOME": str(tmp_path / "empty")},
                     "requires token authentication and this machine has no token"),
    }
    procs = {name: resbench([*base, "--address", addr, "--experiment", name], e,
                            tmp_path / f"{name}.log") for name, (addr, e, _) in cases.items()}
    for name, proc in procs.items():
        assert proc.wait(timeout=180) == 2, name
        text = (tmp_path / f"{name}.log").read_text()
        errors = [line for line in text.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and cases[name][2] in errors[0], (name, text[-2000:])
        assert "Traceback" not in text, (name, text[-2000:])


def _mid_trial(folder: Path, since: float, min_epoch: int = 2) -> bool:
    """A trial of the Tune run started after ``since`` has reported epoch ``min_epoch``."""
    for log in (folder / "ray" / "tune").glob("trial_*/result.json"):
        if log.stat().st_mtime < since:
            continue
        lines = log.read_text().splitlines()
        last = json.loads(lines[-1]) if lines and lines[-1].endswith("}") else {}
        if last.get("final") is False and last.get("epoch", 0) >= min_epoch:
            return True
    return False


def _stop_when(proc: subprocess.Popen, ready, sig: int, log: Path, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"driver ended early:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"never ready:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def test_ctrl_c_kill_and_resume_on_a_started_cluster(head, tmp_path, write_space, monkeypatch):
    address, env = head
    space = tiny_space(recipe={"epochs": 8, "data": {"name": "synthetic", "image_size": 8,
                                                      "options": {"count": 6000,
                                                                  "num_classes": 4}}},
                       search={"sampler": "random", "trials": 6, "experiment": "onhead"})
    path = write_space(space)
    root = tmp_path / "results"
    folder = root / "onhead"
    args = ["search", str(path), "--runner", "ray", "--address", address, "--results",
            str(root), "--sampler-seed", "0", "--scheduler", "none", "--quiet"]
    records = lambda: len(list((folder / "trials").glob("*.json")))  # noqa: E731

    # Ctrl-C once a trial is recorded and another is half-way: exit 130, as the local runner.
    log = tmp_path / "first.log"
    started = time.time()
    code = _stop_when(resbench(args, env, log),
                      lambda: records() >= 1 and _mid_trial(folder, started), signal.SIGINT, log)
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "interrupted; finished work is kept and a rerun resumes" in text
    assert "Traceback" not in text
    cfg = ray_config(path, tmp_path)
    study = open_study(cfg, create=False)
    assert not [t for t in study.get_trials() if t.user_attrs.get("discarded")]  # kept running

    # Resume, then SIGKILL it once it has recorded another trial and is half-way in the next.
    done = records()
    log = tmp_path / "second.log"
    started = time.time()
    code = _stop_when(resbench([*args, "--resume"], env, log),
                      lambda: records() > done and _mid_trial(folder, started), signal.SIGKILL,
                      log)
    assert code == -signal.SIGKILL
    before = snapshot(folder / "trials")

    out = subprocess.run([sys.executable, "-m", "resbench", *args, "--resume"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]

    # The store, the Optuna study and Ray Tune agree: six trials, their states, the best one.
    study = open_study(cfg, create=False)
    trials = counted(study)
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    check_optuna_agrees_with_records(cfg)
    store = {r.key: r for r in Store(folder).records()}
    assert len(store) == len({t.user_attrs["key"] for t in trials})
    for name, record in before.items():  # nothing finished was trained again
        assert snapshot(folder / "trials")[name] == record
    monkeypatch.chdir(tmp_path)
    analysis = experiment_analysis("results/onhead")  # a relative path works too
    tune_status = {t.trial_id: (t.last_result or {}).get("status") for t in analysis.trials}
    for t in trials:
        assert tune_status[t.user_attrs["tune_trial_id"]] == t.user_attrs["status"], t.number
    best = re.search(r"best: #(\d+) val_acc=([0-9.]+)", out.stdout)
    assert best, out.stdout
    completed = [r for r in store.values() if r.status == "completed"]
    top = max(r.metrics.best_val_acc for r in completed)
    assert float(best.group(2)) == pytest.approx(top, abs=5e-5)
    assert study.best_trial.number == int(best.group(1))
    best_record = store[study.best_trial.user_attrs["key"]]
    assert best_record.metrics.best_val_acc == top
    checkpoint = analysis.best_checkpoint  # Ray's own view of the best: not a dangling path
    assert checkpoint is None or Path(checkpoint.path).is_dir()
    own = ExperimentAnalysis(str((folder / "ray" / "tune").resolve()))  # Ray's class as is
    assert len(own.trials) == len(analysis.trials)
    board = tables.leaderboard(tables.prepare(load(folder)))  # the report's best row
    assert board.iloc[0]["best_val_acc_mean"] == pytest.approx(top)
