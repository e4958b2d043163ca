"""benchmarks/gpu_check.py on a machine without CUDA: ``--cpu-smoke`` runs the reachable paths
tiny and says which it skipped (the Ray part is left to the script's own runs: Ray tests are
kept few)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _load():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_max_overlap_counts_trials_running_at_once():
    overlap = _load().max_overlap
    assert overlap([]) == 0
    assert overlap([(0, 1), (1, 2)]) == 1  # one ends as the next starts
    assert overlap([(0, 4), (1, 3), (2, 5), (2.5, 2.6), (6, 7)]) == 4


def test_hand_written_resnet56_has_the_papers_parameter_count():
    assert sum(p.numel() for p in _load().hand_written_resnet56().parameters()) == 853018


@pytest.mark.slow
def test_cpu_smoke_runs_the_reachable_paths_and_skips_cuda_with_a_message(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run the script itself")
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--skip", "ray",
                           "--json", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[SKIP] tests: no CUDA device here" in proc.stdout
    assert "[PASS] throughput:" in proc.stdout
    figures = json.loads(out.read_text())
    row = figures["throughput"]["ResNet-56 vs hand-written"]
    assert row["resbench_params"] == row["reference_params"] == 853018
    assert row["resbench_images_per_s"] > 0 and row["reference_images_per_s"] > 0
    assert figures["throughput"]["ResNet-50 vs torchvision"]["resbench_params"] == 25557032
    # without --cpu-smoke a machine without CUDA is refused, not half-checked
    bare = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert bare.returncode == 1 and "run with --cpu-smoke" in bare.stderr
