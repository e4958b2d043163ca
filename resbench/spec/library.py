"""The spec library that ships inside the package: ``resbench/specs/`` (torchvision, cifar,
preact, ablations, spaces, suites and ``golden.yaml``). The repository's top-level ``specs``
is a link to this folder, so there is one copy."""
from __future__ import annotations

from importlib import resources
from pathlib import Path


def library_root() -> Path:
    """The folder of the shipped spec library (a real folder: resbench is never zipped)."""
    return Path(str(resources.files("resbench") / "specs"))
