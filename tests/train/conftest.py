"""Tiny specs and suites on the ``synthetic`` data set: each trial trains in well under a second."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY_SPEC = {
    "stem": {"kind": "cifar", "width": 4},
    "shortcut": "zero_pad",
    "stages": [{"depth": 1, "width": 4, "stride": 1}, {"depth": 1, "width": 8, "stride": 2}],
}
TINY_DATA = {"name": "synthetic", "image_size": 8, "options": {"count": 96, "num_classes": 4}}
TINY_RECIPE = {"epochs": 2, "batch_size": 32, "eval_batch_size": 64, "data": TINY_DATA,
               "grad_probe_steps": [0, 2], "latency_batch": 8, "device": "cpu"}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def tiny_specs(tmp_path: Path) -> dict[str, Path]:
    """A residual and a plain tiny spec, as files."""
    return {
        "res": write_yaml(tmp_path / "specs" / "tiny_res.yaml", TINY_SPEC),
        "plain": write_yaml(tmp_path / "specs" / "tiny_plain.yaml", {**TINY_SPEC, "shortcut": "none"}),
    }


@pytest.fixture
def tiny_suite(tmp_path: Path, tiny_specs: dict[str, Path]) -> Path:
    """Two specs (found by a glob) × two seeds."""
    return write_yaml(tmp_path / "suite.yaml", {
        "name": "tiny", "specs": ["specs/tiny_*.yaml"], "seeds": [0, 1], "recipe": TINY_RECIPE})
