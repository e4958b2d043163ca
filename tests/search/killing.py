"""Helpers for kill-and-resume tests: run ``resbench search`` as a separate driver process and
kill it (SIGKILL, no chance to clean up) once it is mid-search."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def start_driver(args: list[str], log: Path) -> subprocess.Popen:
    """``python -m resbench.cli search ARGS`` in its own process, output to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "resbench.cli", "search", *args],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path,
              timeout: float = 120.0) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"driver ended (code {proc.returncode}) before it could be "
                                 f"killed mid-search:\n{log.read_text()[-3000:]}")
        if ready():
            proc.kill()
            proc.wait(timeout=30)
            return
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)
    raise AssertionError(f"driver never reached the kill point:\n{log.read_text()[-3000:]}")


def snapshot(trials_dir: Path) -> dict[str, dict]:
    """Every finished record, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(trials_dir.glob("*.json"))}
