"""Driven by specs/: every architecture file builds, trains a step on a tiny input and matches
its golden parameter count (and MACs where golden.yaml has an outside reference).
A new spec file is tested here without a new test; it only needs a line in golden.yaml."""
from __future__ import annotations

import pytest
import torch

from resbench.compile import build, cost
from resbench.spec import load_spec

from .conftest import SPECS, golden, n_params, spec_files, spec_id

FILES = spec_files()
GOLDEN = golden()
# Deep or wide nets take a few seconds for a forward/backward on the CPU.
SLOW = {"cifar/resnet1202.yaml", "cifar/plain1202.yaml", "preact/preact_resnet1001.yaml",
        "torchvision/resnet152.yaml", "torchvision/wide_resnet50_2.yaml",
        "torchvision/resnet101.yaml"}


def _params(path):
    return [pytest.param(p, id=spec_id(p), marks=[pytest.mark.slow] if spec_id(p) in SLOW else [])
            for p in path]


def test_the_library_is_all_there():
    names = {spec_id(p) for p in FILES}
    for expected in ("torchvision/resnet50.yaml", "cifar/resnet1202.yaml", "cifar/plain20.yaml",
                     "preact/preact_resnet1001.yaml", "ablations/resnet56_option_c.yaml"):
        assert expected in names


def test_golden_covers_exactly_the_spec_files():
    assert sorted(GOLDEN) == sorted(spec_id(p) for p in FILES), \
        "add a line to specs/golden.yaml for each new spec file (and drop stale ones)"


@pytest.mark.parametrize("path", _params(FILES))
def test_spec_builds_trains_a_step_and_matches_golden(path):
    spec = load_spec(path)
    model = build(spec)
    assert n_params(model) == GOLDEN[spec_id(path)]["params"]

    size = 16 if spec.stem.kind == "cifar" else 32
    x = torch.randn(2, spec.input_channels, size, size)
    model.train()
    y = model(x)
    assert y.shape == (2, spec.num_classes)
    assert torch.isfinite(y).all()
    y.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    if spec.summary_fields()["shortcut"] != "none" and spec.normfree != "fixup":
        # Through shortcuts the gradient reaches the stem intact. (Plain nets are exempt: in a
        # 1202-layer plain net it overflows float32 at init, the degradation problem itself.
        # Fixup starts with a zero classifier, so only the classifier learns in its first step.)
        assert all(torch.isfinite(g).all() for g in grads)
        assert next(model.parameters()).grad.abs().sum() > 0


@pytest.mark.parametrize("path", _params(FILES))
def test_cost_matches_golden(path):
    entry = GOLDEN[spec_id(path)]
    c = cost(path)
    assert c.params == entry["params"]
    if "macs" in entry:
        assert c.macs == entry["macs"]
    assert c.input_size == load_spec(path).input_size


def test_the_repository_specs_are_the_library_the_package_ships():
    """specs/ is resbench/specs, and pyproject's package data carries every file of it that
    golden.yaml names, so an installed resbench has the same library."""
    import re

    from resbench.spec.library import library_root

    assert SPECS.resolve() == library_root().resolve()
    pyproject = (SPECS.parent / "pyproject.toml").read_text()
    patterns = re.findall(r'"(specs/[^"]+)"', pyproject.split("[tool.setuptools.package-data]")[1])
    package = library_root().parent
    shipped = {p.relative_to(library_root()).as_posix() for pattern in patterns
               for p in package.glob(pattern)}
    assert {spec_id(p) for p in FILES} | {"golden.yaml"} <= shipped
