"""resbench as a user installs it: a wheel built from this checkout, installed (not editable)
into a fresh virtual environment that reuses the installed torch, used from a folder outside
the checkout — the spec library, the command and a one-epoch benchmark all come from the wheel."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def run(*cmd: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, f"{cmd}: {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(the venv's bin folder, an empty working folder, the environment to run in)."""
    tmp = tmp_path_factory.mktemp("installed")
    src = tmp / "src"  # a copy, so the build leaves no build/ or egg-info in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "resbench", src / "resbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
        "--no-index", "-q", "-w", tmp / "dist", cwd=src, env=env)
    wheel = next((tmp / "dist").glob("resbench-*.whl"))
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv,
        cwd=tmp, env=env)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel, cwd=tmp, env=env)
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", work, env


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, work, env = installed
    out = run(bin_dir / "python", "-c", "import resbench, resbench.spec.library as l; "
              "print(resbench.__file__); print(l.library_root())", cwd=work, env=env)
    module, library = out.stdout.split()
    venv = bin_dir.parent
    assert Path(module).is_relative_to(venv) and Path(library).is_relative_to(venv)
    assert (Path(library) / "suites" / "degradation.yaml").is_file()
    assert (Path(library) / "golden.yaml").is_file()


def test_list_show_and_a_one_epoch_bench_from_another_folder(installed):
    bin_dir, work, env = installed
    out = run(bin_dir / "resbench", "list", cwd=work, env=env)
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    assert rows["resnet50"][1:4] == ["torchvision", "25.56M", "4.09G"]
    assert rows["resnet56"][1:4] == ["cifar", "853.02K", "125.49M"]
    assert "degradation" in out.stdout and "cifar_small" in out.stdout

    out = run(bin_dir / "python", "-m", "resbench", "show", "resnet50", cwd=work, env=env)
    assert "25,557,032" in out.stdout

    out = run(bin_dir / "resbench", "bench", "resnet20", "--epochs", "1", "--limit", "200",
              "--seeds", "0", "--threads", "1", "--progress", "none", cwd=work, env=env)
    assert "resnet20" in out.stdout and "completed" in out.stdout
    records = list((work / "results" / "resnet20" / "trials").glob("*.json"))
    assert len(records) == 1  # ./results of the working folder, as --help says
