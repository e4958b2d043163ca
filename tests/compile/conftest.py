"""Shared helpers for the compiler tests: the spec library, its golden table, tiny inputs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

SPECS = Path(__file__).resolve().parents[2] / "specs"


def spec_files() -> list[Path]:
    """Every architecture spec in the library (what golden.yaml must cover): the files
    ``resbench validate specs/`` checks, by the same rule (no suites, spaces or golden.yaml)."""
    from resbench.spec.load import iter_spec_files

    return sorted(iter_spec_files([SPECS]))


def spec_id(path: Path) -> str:
    return path.relative_to(SPECS).as_posix()


def golden() -> dict[str, dict[str, int]]:
    return yaml.safe_load((SPECS / "golden.yaml").read_text())


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
