"""cost(): parameters equal the real module's, MACs follow convolution arithmetic, and the
per-part entries (stem, layer1..N, head) describe the real forward and sum to the totals."""
from __future__ import annotations

import json

import pytest
import torch

from resbench.compile import build, cost
from resbench.spec import load_spec, parse_spec

from .conftest import SPECS, n_params

CHEAP = ["cifar/resnet20.yaml", "cifar/plain20.yaml", "ablations/resnet56_gated.yaml",
         "ablations/resnet56_option_c.yaml", "preact/preact_resnet164.yaml",
         "torchvision/resnet18.yaml", "torchvision/resnext50_32x4d.yaml"]


@pytest.mark.parametrize("name", CHEAP)
def test_params_equal_the_real_module(name):
    assert cost(SPECS / name).params == n_params(build(SPECS / name))


@pytest.mark.parametrize("extra", [{"se_ratio": 0.25}, {"stem": "deep", "norm": "none"},
                                   {"block": "preact_bottleneck", "norm": "group"}])
def test_params_equal_the_real_module_for_options(extra):
    spec = parse_spec({"stem": "imagenet", "shortcut": "avgpool_projection",
                       "stages": [{"depth": 2, "width": 16}, {"depth": 1, "width": 32,
                                                              "stride": 2}], **extra})
    assert cost(spec).params == n_params(build(spec))


@pytest.mark.parametrize("name", ["cifar/resnet20.yaml", "preact/preact_resnet164.yaml",
                                  "torchvision/resnet50.yaml"])
def test_parts_sum_to_the_totals(name):
    c = cost(SPECS / name)
    spec = load_spec(SPECS / name)
    names = ["stem", *(f"layer{i + 1}" for i in range(len(spec.stages))), "head"]
    assert [s.name for s in c.stages] == names
    assert [s.blocks for s in c.stages] == [0, *(s.depth for s in spec.stages), 0]
    for field in ("params", "macs", "activation_bytes"):
        assert sum(getattr(s, field) for s in c.stages) == getattr(c, field)
        assert all(getattr(s, field) >= 0 for s in c.stages)
    assert c.stages[-1].output_shape == (1, spec.num_classes)


def test_part_shapes_are_those_of_the_real_forward():
    model = build(SPECS / "torchvision" / "resnet18.yaml").eval()
    x = torch.randn(2, 3, 96, 96)
    shapes = []
    with torch.no_grad():
        y = x
        for name, module in model.named_children():
            y = module(y)
            if name in ("maxpool", *model.stage_names):
                shapes.append(tuple(y.shape))
    c = cost(SPECS / "torchvision" / "resnet18.yaml", input_size=96, batch_size=2)
    assert [s.output_shape for s in c.stages[:-1]] == shapes
    assert c.input_size == 96


def test_macs_follow_convolution_arithmetic():
    c = cost(SPECS / "cifar" / "resnet20.yaml")
    stem, layer1, *_ , head = c.stages
    assert stem.macs == 32 * 32 * 16 * (3 * 3 * 3)  # one 3x3 conv, 3 -> 16 channels at 32x32
    assert layer1.macs == 6 * 32 * 32 * 16 * (16 * 3 * 3)  # six 3x3 convs, 16 -> 16
    assert head.macs == 64 * 10
    # Zero-padding shortcuts cost nothing; projections cost their 1x1 convs.
    b = cost(SPECS / "ablations" / "resnet56_option_b.yaml")
    a = cost(SPECS / "ablations" / "resnet56_option_a.yaml")
    assert b.macs - a.macs == 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32


def test_macs_scale_with_batch_and_resolution():
    one = cost(SPECS / "cifar" / "resnet20.yaml")
    four = cost(SPECS / "cifar" / "resnet20.yaml", batch_size=4)
    assert four.macs == 4 * one.macs and four.params == one.params
    assert four.activation_bytes == 4 * one.activation_bytes
    big = cost(SPECS / "cifar" / "resnet20.yaml", input_size=64)
    assert big.macs - 640 == 4 * (one.macs - 640)  # convs scale with area; the fc does not


def test_activation_bytes_count_fresh_tensors_only():
    stem = cost(SPECS / "cifar" / "resnet20.yaml").stages[0]
    # conv output and norm output, float32 at 16x32x32; the in-place ReLU adds nothing.
    assert stem.activation_bytes == 2 * 16 * 32 * 32 * 4


def test_cost_is_serialisable():
    c = cost(SPECS / "cifar" / "resnet20.yaml")
    data = json.loads(json.dumps(c.to_dict()))
    assert data["params"] == 269_722 and data["stages"][1]["name"] == "layer1"
