"""The torchvision specs are torchvision's networks: same state_dict keys and shapes (strict
loading), same outputs, same MACs. Random-init torchvision models, no downloads."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from resbench.compile import build, cost

from .conftest import SPECS

MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
          "wide_resnet50_2"]
SLOW = {"resnet101", "resnet152", "wide_resnet50_2"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
                                  for n in MODELS])
def test_torchvision_weights_load_strictly_and_outputs_match(name):
    reference = getattr(torchvision.models, name)(weights=None).eval()
    model = build(SPECS / "torchvision" / f"{name}.yaml").eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_default_init_matches_torchvision_in_distribution():
    """Same init scheme: He-normal (fan_out) conv weights, unit norm weights, zero norm biases."""
    model = build(SPECS / "torchvision" / "resnet50.yaml")
    reference = torchvision.models.resnet50(weights=None)
    ours, theirs = model.state_dict(), reference.state_dict()
    for key in ("layer3.2.conv2.weight", "conv1.weight"):
        fan_out = ours[key].shape[0] * ours[key][0, 0].numel()
        assert ours[key].std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
        assert ours[key].std().item() == pytest.approx(theirs[key].std().item(), rel=0.1)
    assert (ours["layer2.0.bn3.weight"] == 1).all() and (ours["layer2.0.bn3.bias"] == 0).all()


def test_zero_init_residual_matches_torchvision():
    from resbench.spec import load_spec

    spec = load_spec(SPECS / "torchvision" / "resnet18.yaml")
    model = build(spec.model_copy(update={"zero_init_residual": True}))
    reference = torchvision.models.resnet18(weights=None, zero_init_residual=True)
    zeroed = {k for k, v in reference.state_dict().items() if k.endswith("weight") and
              v.dtype.is_floating_point and (v == 0).all()}
    ours = {k for k, v in model.state_dict().items() if k.endswith("weight") and
            v.dtype.is_floating_point and (v == 0).all()}
    assert zeroed == ours and ours == {f"layer{i}.{j}.bn2.weight" for i in range(1, 5)
                                       for j in range(2)}


def test_resnet50_macs_equal_torchvision_counted_the_same_way():
    with torch.device("meta"):
        reference = torchvision.models.resnet50(weights=None).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference(torch.empty(1, 3, 224, 224, device="meta"))
    c = cost(SPECS / "torchvision" / "resnet50.yaml")
    assert c.input_size == 224
    assert c.macs == counter.get_total_flops() // 2
    assert c.macs == pytest.approx(4.09e9, rel=0.005)  # torchvision's documented 4.09 GFLOPS
