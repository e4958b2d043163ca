"""Transfer learning from a torchvision state_dict: head replaced, stages frozen and unfrozen."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resbench.compile import build
from resbench.errors import SpecError, UserError
from resbench.spec import load_spec
from resbench.spec.recipe import TransferConfig, parse_recipe
from resbench.train.transfer import FreezeSchedule, initialise
from resbench.train.trial import CHECKPOINT, run_trial

from ..conftest import SPECS

RESNET18 = SPECS / "torchvision" / "resnet18.yaml"


@pytest.fixture(scope="module")
def torchvision_weights(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision resnet18 state_dict (random init, 1000 classes), saved as a user would."""
    from torchvision.models import resnet18

    torch.manual_seed(123)
    weights = resnet18(num_classes=1000).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(weights, path)
    return path, weights


def test_init_loads_everything_but_the_replaced_head(torchvision_weights):
    path, weights = torchvision_weights
    spec = load_spec(RESNET18).model_copy(update={"num_classes": 10})
    model = build(spec)
    fresh = initialise(model, TransferConfig(init=str(path)))
    assert fresh == ["fc.weight", "fc.bias"] and model.fc.out_features == 10
    own = model.state_dict()
    for name, tensor in weights.items():
        if not name.startswith("fc."):
            assert torch.equal(own[name], tensor), name


def test_a_head_is_not_replaced_unless_asked(torchvision_weights):
    path, _ = torchvision_weights
    model = build(load_spec(RESNET18).model_copy(update={"num_classes": 10}))
    with pytest.raises(UserError, match=r"shape mismatch: fc.weight \(1000, 512\) vs \(10, 512\)"):
        initialise(model, TransferConfig(init=str(path), replace_head=False))


def test_freeze_schedule_sets_requires_grad():
    model = build(load_spec(RESNET18).model_copy(update={"num_classes": 10}))
    schedule = FreezeSchedule(model, TransferConfig(freeze=("stem", "layer1", "layer2"),
                                                    unfreeze={"layer2": 2}))
    frozen = schedule.apply(1)
    assert {id(m) for m in frozen} == {id(model.conv1), id(model.bn1), id(model.relu),
                                       id(model.maxpool), id(model.layer1), id(model.layer2)}
    assert not any(p.requires_grad for p in model.layer2.parameters())
    assert all(p.requires_grad for p in model.layer3.parameters())
    schedule.apply(2)
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert not any(p.requires_grad for p in model.conv1.parameters())
    with pytest.raises(SpecError, match="unknown part of the model") as info:
        FreezeSchedule(model, TransferConfig(freeze=("layer9",)))
    assert "layer4" in info.value.allowed


def test_transfer_trial_keeps_frozen_stages_and_trains_the_rest(torchvision_weights, tmp_path):
    """Two epochs: stem and layer1 frozen throughout, layer2 unfrozen at epoch 2."""
    path, weights = torchvision_weights
    recipe = parse_recipe({
        "epochs": 2, "batch_size": 8, "device": "cpu", "grad_probe_steps": [0], "latency_batch": 2,
        "optimizer": {"lr": 0.01},
        "data": {"name": "synthetic", "image_size": 32,
                 "options": {"count": 40, "channels": 3, "num_classes": 10}},
        "transfer": {"init": str(path), "freeze": ["stem", "layer1", "layer2"],
                     "unfreeze": {"layer2": 2}}})
    record = run_trial(load_spec(RESNET18), recipe, 0, checkpoint_dir=tmp_path)
    assert record.status == "completed", record.reason
    assert record.spec["num_classes"] == 10
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)["loop"]["model"]

    def same(prefix: str) -> bool:
        return all(torch.equal(state[k], v) for k, v in weights.items() if k.startswith(prefix))

    assert same("conv1.") and same("bn1.") and same("layer1.")  # weights and BN statistics
    assert not same("layer2.") and not same("layer4.")
    assert state["fc.weight"].shape == (10, 512)


def test_freezing_uses_the_compiled_models_own_parts():
    """``stem``/``layerN``/``head`` are ``ResNet.parts()``: a pre-activation net's head holds its
    final norm and activation, the dropout and the classifier, as cost() counts them."""
    from resbench.spec import parse_spec

    model = build(parse_spec({"stem": "cifar", "block": "preact_basic", "head": {"dropout": 0.1},
                              "stages": [{"depth": 1, "width": 8},
                                         {"depth": 1, "width": 16, "stride": 2}]}))
    groups = dict(model.parts())
    for part in ("stem", "layer2", "head"):
        frozen = FreezeSchedule(model, TransferConfig(freeze=(part,))).apply(1)
        assert [id(m) for m in frozen] == [id(m) for m in groups[part]], part
    assert [type(m).__name__ for m in groups["head"]] == [
        "BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Dropout", "Linear"]
