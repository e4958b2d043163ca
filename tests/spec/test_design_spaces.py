"""The design-space search spaces: RegNet's six parameters and per-block choices sample into
valid specs whose stages follow from the drawn values."""
from __future__ import annotations

import random

from resbench.spec import parse_spec
from resbench.spec.library import library_root
from resbench.spec.regnet import regnet_stages
from resbench.spec.space import load_space

SPACES = library_root() / "spaces"


class Seeded:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, name, values):
        return self.rng.choice(list(values))

    def int(self, name, lo, hi, step, log):
        return self.rng.randrange(lo, hi + 1, step)

    def float(self, name, lo, hi, step, log):
        return self.rng.uniform(lo, hi)


def test_the_regnet_space_compiles_each_point_to_regnet_stages():
    space = load_space(SPACES / "regnet.yaml")
    assert {d.name for d in space.dists} >= {f"regnet.{p}" for p in (
        "depth", "w0", "wa", "wm", "group_width", "bottleneck_ratio")}
    keys = set()
    for seed in range(8):
        data, _, params = space.sample(Seeded(seed))
        spec = parse_spec(data)
        drawn = {k.removeprefix("regnet."): v for k, v in params.items() if k.startswith("regnet.")}
        expected = regnet_stages(**drawn)
        assert [(s.depth, s.width, s.group_width, s.bottleneck_ratio, s.block) for s in
                spec.stages] == [(e["depth"], e["width"], e["group_width"],
                                  e["bottleneck_ratio"], "regnet") for e in expected]
        assert sum(s.depth for s in spec.stages) == drawn["depth"]
        keys.add(spec.key())
    assert len(keys) > 1


def test_the_per_block_space_varies_single_blocks():
    space = load_space(SPACES / "per_block.yaml")
    assert [d.name for d in space.dists] == ["stages[0].blocks[-1].se_ratio",
                                             "stages[1].blocks[0].shortcut",
                                             "stages[1].blocks[2].block"]
    seen = set()
    for seed in range(12):
        data, _, params = space.sample(Seeded(seed))
        spec = parse_spec(data)
        first, second = spec.stages
        assert first.block_at(2).se_ratio == params["stages[0].blocks[-1].se_ratio"]
        assert first.block_at(0).se_ratio == 0.0
        assert second.block_at(0).shortcut == params["stages[1].blocks[0].shortcut"]
        assert second.block_at(2).block == params["stages[1].blocks[2].block"]
        seen.add(spec.key())
    assert len(seen) > 4
