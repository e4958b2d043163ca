"""The RegNet and DenseNet library specs against torchvision, their reference implementation:
golden numbers equal torchvision's published metadata and the counts of its modules, its
state_dicts load strictly (through resbench.keymap) and give equal outputs. No downloads:
the reference weights are torchvision's random init."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from resbench.compile import build, cost
from resbench.keymap import from_torchvision, to_torchvision
from resbench.spec import load_spec, parse_spec
from resbench.spec.regnet import regnet_stages

from .conftest import SPECS, golden

GOLDEN = golden()
REFERENCED = sorted(k for k, v in GOLDEN.items() if str(v.get("source", "")).startswith(
    "torchvision "))
REGNET_PARAMS = {  # torchvision's regnet.py builders: depth, w_0, w_a, w_m, group_width
    "regnet_x_400mf": (22, 24, 24.48, 2.54, 16), "regnet_y_400mf": (16, 48, 27.89, 2.09, 8),
    "regnet_x_1_6gf": (18, 80, 34.01, 2.25, 24), "regnet_y_800mf": (14, 56, 38.84, 2.4, 16),
}


def reference(name: str) -> torch.nn.Module:
    return getattr(torchvision.models, name)().eval()


def test_every_regnet_and_densenet_spec_has_a_torchvision_source():
    assert REFERENCED == sorted([*(f"regnet/{n}.yaml" for n in REGNET_PARAMS),
                                 *(f"densenet/densenet{d}.yaml" for d in (121, 161, 169, 201))])
    assert GOLDEN["densenet/densenet121.yaml"]["params"] == 7_978_856  # the number


@pytest.mark.parametrize("path", REFERENCED)
def test_golden_numbers_are_torchvisions_published_ones(path):
    name = load_spec(SPECS / path).name
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    entry = GOLDEN[path]
    assert entry["source"] == f"torchvision {name}"
    assert entry["params"] == meta["num_params"]
    assert round(entry["macs"] / 1e9, 3) == pytest.approx(meta["_ops"])  # GFLOPS count MACs
    c = cost(SPECS / path)
    assert (c.params, c.macs) == (entry["params"], entry["macs"])


@pytest.mark.slow
@pytest.mark.parametrize("path", REFERENCED)
def test_golden_macs_are_counted_on_torchvisions_module(path):
    model = reference(load_spec(SPECS / path).name).to("meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() // 2 == GOLDEN[path]["macs"]
    assert sum(p.numel() for p in model.parameters()) == GOLDEN[path]["params"]


@pytest.mark.parametrize(("path", "family"), [("regnet/regnet_y_400mf.yaml", "regnet"),
                                              ("densenet/densenet121.yaml", "densenet")])
def test_torchvision_weights_load_strictly_and_give_equal_outputs(path, family):
    spec = load_spec(SPECS / path)
    ref = reference(spec.name)
    ours = build(spec).eval()
    theirs = ref.state_dict()
    ours.load_state_dict(from_torchvision(family, theirs), strict=True)
    assert to_torchvision(family, ours.state_dict()).keys() == theirs.keys()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)


def test_an_unmapped_key_is_an_error():
    with pytest.raises(KeyError, match="no regnet key mapping for 'trunk_output.extra'"):
        from_torchvision("regnet", {"trunk_output.extra": 0})


@pytest.mark.parametrize("name", sorted(REGNET_PARAMS))
def test_the_regnet_generator_gives_torchvisions_stages(name):
    from torchvision.models.regnet import BlockParams

    depth, w0, wa, wm, gw = REGNET_PARAMS[name]
    ref = BlockParams.from_init_params(depth=depth, w_0=w0, w_a=wa, w_m=wm, group_width=gw)
    stages = regnet_stages(depth=depth, w0=w0, wa=wa, wm=wm, group_width=gw)
    assert [(s["depth"], s["width"], s["group_width"]) for s in stages] == list(
        zip(ref.depths, ref.widths, ref.group_widths))
    # A spec written as RegNet parameters is the library spec.
    library = load_spec(SPECS / "regnet" / f"{name}.yaml")
    generated = parse_spec({"stem": {"kind": "conv3x3", "width": 32}, "se_ratio":
                            library.stages[0].se_ratio, "regnet": {
                                "depth": depth, "w0": w0, "wa": wa, "wm": wm, "group_width": gw}})
    assert generated.key() == library.key()


@pytest.mark.parametrize("seed", range(3))
def test_the_generator_agrees_with_torchvision_on_random_parameters(seed):
    import random

    from torchvision.models.regnet import BlockParams

    rng = random.Random(seed)
    for _ in range(50):
        depth, w0 = rng.randint(1, 40), 8 * rng.randint(1, 32)
        wa, wm = round(rng.uniform(0, 200), 2), round(rng.uniform(1.5, 3), 2)
        gw, b = rng.choice([1, 2, 8, 16, 24, 48]), rng.choice([0.25, 0.5, 1.0, 2.0])
        ref = BlockParams.from_init_params(depth=depth, w_0=w0, w_a=wa, w_m=wm, group_width=gw,
                                           bottleneck_multiplier=b)
        ours = regnet_stages(depth=depth, w0=w0, wa=wa, wm=wm, group_width=gw,
                             bottleneck_ratio=b)
        assert [(s["depth"], s["width"], s["group_width"]) for s in ours] == list(
            zip(ref.depths, ref.widths, ref.group_widths))


def test_the_tiered_deep_stem_is_timms_resnet26t():
    """Stem widths (24, 32, 64): timm's resnet26t, strictly loaded, equal outputs, counts."""
    timm = pytest.importorskip("timm")
    path = "timm/resnet26t.yaml"
    ref = timm.create_model("resnet26t", pretrained=False).eval()
    ours = build(load_spec(SPECS / path)).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    assert GOLDEN[path]["source"].startswith(f"timm {timm.__version__} resnet26t")
    assert sum(p.numel() for p in ref.parameters()) == GOLDEN[path]["params"]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        ref.to("meta")(torch.empty(1, 3, 224, 224, device="meta"))
    assert counter.get_total_flops() // 2 == GOLDEN[path]["macs"] == cost(SPECS / path).macs
