"""One trial: reproducibility, resuming from an epoch checkpoint, pruning, the probe."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resbench.compile import build
from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe
from resbench.train.probe import GradFlowProbe
from resbench.train.trial import CHECKPOINT, load_data, run_trial

from .conftest import TINY_RECIPE, TINY_SPEC

SPEC = parse_spec({**TINY_SPEC, "name": "tiny"})
RECIPE = parse_recipe({**TINY_RECIPE, "epochs": 3,
                       "augment": {"random_crop": True, "padding": 1, "hflip": True}})


@pytest.fixture(scope="module")
def data():
    return load_data(RECIPE.data)


def test_same_seed_same_result(data):
    a = run_trial(SPEC, RECIPE, 0, data=data)
    b = run_trial(SPEC, RECIPE, 0, data=data)
    assert a.key == b.key
    assert [c.train_loss for c in a.curves] == [c.train_loss for c in b.curves]
    assert a.grad_flow == b.grad_flow


def test_interrupted_trial_resumes_from_its_checkpoint_exactly(data, tmp_path: Path):
    """Ctrl-C after epoch 1; the rerun continues from the checkpoint and ends where an
    uninterrupted run ends (weights, optimizer, data order and augmentation restored)."""
    full = run_trial(SPEC, RECIPE, 0, data=data)

    def interrupt(epoch, metrics):
        if epoch == 1:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        run_trial(SPEC, RECIPE, 0, data=data, reporter=interrupt, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and state["key"] == full.key
    resumed = run_trial(SPEC, RECIPE, 0, data=data, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 1 and resumed.status == "completed"
    assert [c.epoch for c in resumed.curves] == [1, 2, 3]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert [getattr(c, key) for c in resumed.curves] == [getattr(c, key) for c in full.curves]
    assert resumed.grad_flow == full.grad_flow


def test_a_checkpoint_of_another_trial_is_ignored(data, tmp_path: Path):
    run_trial(SPEC, RECIPE, 1, data=data, checkpoint_dir=tmp_path)
    record = run_trial(SPEC, RECIPE, 0, data=data, checkpoint_dir=tmp_path)
    assert "resumed_from_epoch" not in record.to_json() and len(record.curves) == 3


def test_reporter_can_prune(data):
    seen = []

    def stop_after_two(epoch, metrics):
        seen.append((epoch, sorted(metrics)))
        return epoch == 2

    record = run_trial(SPEC, RECIPE, 0, data=data, reporter=stop_after_two)
    assert record.status == "pruned" and len(record.curves) == 2
    assert seen[0] == (1, ["epoch", "epoch_time_s", "images_per_s", "lr", "train_acc",
                           "train_loss", "train_time_s", "val_acc", "val_loss"])


@pytest.mark.parametrize("shortcut", ["none", "zero_pad"])
def test_probe_measures_the_gradient_at_each_block_output(shortcut):
    """The probe's norms equal autograd's gradient of the loss w.r.t. each block's output,
    and only the chosen steps are probed."""
    spec = parse_spec({**TINY_SPEC, "name": "t", "shortcut": shortcut, "input_channels": 1,
                       "num_classes": 4})
    torch.manual_seed(0)
    model = build(spec)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 4, (16,))
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for _, b in model.blocks()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    expected = [g.norm().item() for g in torch.autograd.grad(loss, outputs, retain_graph=True)]
    params = [list(b.parameters()) for _, b in model.blocks()]
    param_grads = torch.autograd.grad(loss, [p for ps in params for p in ps])
    sizes = [len(ps) for ps in params]
    expected_params = [torch.cat([g.flatten() for g in chunk]).norm().item()
                       for chunk in (param_grads[:sizes[0]], param_grads[sizes[0]:])]
    for h in handles:
        h.remove()

    probe = GradFlowProbe(model.blocks(), steps=[3])
    assert not probe.wants(0) and probe.wants(3)
    probe.arm()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    probe.collect(3)
    assert [r["block"] for r in probe.rows] == ["layer1.0", "layer2.0"]
    assert [r["grad_norm"] for r in probe.rows] == pytest.approx(expected, rel=1e-5)
    assert [r["param_grad_norm"] for r in probe.rows] == pytest.approx(expected_params, rel=1e-5)
    model(x).sum().backward()  # hooks are gone: nothing more is recorded
    assert len(probe.rows) == 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_and_channels_last_run_on_cpu(data, precision):
    recipe = parse_recipe({**TINY_RECIPE, "epochs": 1, "precision": precision,
                           "channels_last": True, "optimizer": {"name": "adamw", "lr": 0.01}})
    record = run_trial(SPEC, recipe, 0, data=data)
    assert record.status == "completed", record.reason
    assert record.recipe["precision"] == precision
    assert all(g.grad_norm > 0 for g in record.grad_flow)  # unscaled, finite


def test_a_trial_checkpoint_initialises_another_trial(data, tmp_path: Path):
    """The transfer workflow from one of our own runs: a trial's last.pt is a valid `init`."""
    from resbench.train.transfer import load_checkpoint_weights
    from resbench.train.trial import adapt_spec

    run_trial(SPEC, RECIPE, 0, data=data, checkpoint_dir=tmp_path)
    weights = load_checkpoint_weights(tmp_path / CHECKPOINT)
    trained = torch.load(tmp_path / CHECKPOINT, weights_only=True)["loop"]["model"]
    model = build(adapt_spec(SPEC, data))
    model.load_state_dict(weights, strict=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_throughput_counts_training_images_over_training_time(data):
    """images/s is the images an epoch trains on (whole batches: no ragged last one) over the
    training pass alone, not the evaluation after it; the trial's train time sums its epochs'."""
    record = run_trial(SPEC, RECIPE, 0, data=data)
    trained = len(data.train) // RECIPE.batch_size * RECIPE.batch_size
    assert 0 < trained < len(data.train)  # the set has a ragged last batch, which is dropped
    for row in record.curves:
        assert row.images_per_s * row.train_time_s == pytest.approx(trained)
    assert record.metrics.train_time_s == pytest.approx(
        sum(r.train_time_s for r in record.curves))
