"""Shared test set-up: small, deterministic, CPU-only."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    """Keep each test process to the machine's cores without oversubscription."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
