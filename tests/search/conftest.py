"""Tiny search spaces on synthetic data: each trial trains in well under a second."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_RECIPE = {
    "epochs": 3, "batch_size": 64, "grad_probe_steps": [], "latency_batch": 4,
    "optimizer": {"name": "sgd", "lr": 0.1},
    "data": {"name": "synthetic", "image_size": 8, "options": {"count": 160, "num_classes": 4}},
}


def tiny_space(**fields: Any) -> dict[str, Any]:
    """A space over 2-stage CIFAR-style nets with 4-8 channels (and the fields given)."""
    recipe = {**TINY_RECIPE, **fields.pop("recipe", {})}
    base = {"name": "tiny", "stem": {"kind": "cifar", "width": 4}, "block": "basic",
            "shortcut": "projection",
            "stages": [{"depth": {"$int": [1, 2]}, "width": {"$choice": [4, 8]}, "stride": 1},
                       {"depth": 1, "width": 8, "stride": 2}],
            "recipe": recipe}
    return {**base, **fields}


@pytest.fixture
def write_space(tmp_path: Path):
    """Write a space mapping to a YAML file and return its path."""
    def write(data: dict[str, Any], name: str = "space.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
