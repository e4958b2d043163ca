"""Lesion study on nets whose answer is known: zero residual branches (removing them changes
nothing), and agreement with a direct computation (the net run with the block replaced by what
remains of it)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from resbench.analysis import lesion_study, removed
from resbench.compile import build
from resbench.spec import parse_spec

STAGES = [{"depth": 2, "width": 4, "stride": 1}, {"depth": 2, "width": 8, "stride": 2}]
BASE = {"input_channels": 1, "num_classes": 5, "input_size": 8,
        "stem": {"kind": "cifar", "width": 4}, "stages": STAGES}


def net(**fields) -> nn.Module:
    torch.manual_seed(0)
    return build(parse_spec({**BASE, **fields})).eval()


X = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))


def agreement(reference: torch.Tensor):
    """accuracy of a model against ``reference`` labels (its intact predictions)."""
    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return float((model(X).argmax(1) == reference).float().mean())
    return evaluate


def test_zero_residual_branches_make_every_lesion_a_no_op():
    model = net(zero_init_residual=True)  # the last norm of every branch is zero: F(x) = 0
    with torch.no_grad():
        intact = model(X)
    result = lesion_study(model, agreement(intact.argmax(1)), draws=2)
    assert result.val_acc == 1.0
    assert [r.downsample for r in result.blocks] == [False, False, True, False]
    assert all(r.removable and r.val_acc == 1.0 for r in result.blocks)
    assert [d.k for d in result.random] == [1, 1, 2, 2, 3, 3, 4]
    assert all(d.val_acc == 1.0 and len(d.blocks) == d.k for d in result.random)
    with removed(model, [0, 1, 2, 3]), torch.no_grad():
        assert torch.equal(model(X), intact)
    with torch.no_grad():
        assert torch.equal(model(X), intact)  # the hooks are gone afterwards


def test_removing_a_residual_branch_leaves_act_of_the_shortcut():
    model = net(shortcut="zero_pad")
    for index, (name, block) in enumerate(model.blocks()):
        def direct(x: torch.Tensor, block=block) -> torch.Tensor:
            return block.relu(block.shortcut.carry(x, x))
        expected = _run_with(model, name, direct)
        with removed(model, [index]), torch.no_grad():
            assert torch.allclose(model(X), expected, atol=1e-6), name
        with torch.no_grad():
            assert not torch.allclose(model(X), expected, atol=1e-6)  # the branch mattered


def test_removing_a_plain_block_skips_it_and_downsampling_plain_blocks_stay():
    model = net(shortcut="none")
    expected = _run_with(model, "layer1.1", lambda x: x)
    with removed(model, [1]), torch.no_grad():
        assert torch.allclose(model(X), expected, atol=1e-6)
    result = lesion_study(model, agreement(model(X).argmax(1)), draws=1)
    assert [r.removable for r in result.blocks] == [True, True, False, True]
    assert result.blocks[2].val_acc is None
    assert all(2 not in d.blocks for d in result.random)
    with pytest.raises(ValueError, match="cannot be removed"):
        with removed(model, [2]):
            pass


def _run_with(model: nn.Module, name: str, replacement) -> torch.Tensor:
    """The net's output with block ``name`` computed by ``replacement`` (stage by stage)."""
    x = X
    with torch.no_grad():
        for child_name, child in model.named_children():
            if isinstance(child, nn.Sequential) and child_name.startswith("layer"):
                for j, block in enumerate(child):
                    x = replacement(x) if f"{child_name}.{j}" == name else block(x)
            else:
                x = child(x)
    return x
