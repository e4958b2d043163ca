"""Fault injection into training: corrupt and truncated checkpoints, divergence without NaN,
numeric overflow."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe
from resbench.train.trial import CHECKPOINT, PREVIOUS, load_data, run_trial

from .conftest import TINY_RECIPE, TINY_SPEC

SPEC = parse_spec({**TINY_SPEC, "name": "tiny"})
RECIPE = parse_recipe({**TINY_RECIPE, "epochs": 3})


@pytest.fixture(scope="module")
def data():
    return load_data(RECIPE.data)


@pytest.fixture(scope="module")
def full(data):
    return run_trial(SPEC, RECIPE, 0, data=data)


def interrupted_after(epoch: int, data, folder: Path) -> None:
    """Run the trial into ``folder`` and stop it (Ctrl-C) after ``epoch``."""
    def stop(e, metrics):
        if e == epoch:
            raise KeyboardInterrupt
        return False

    with pytest.raises(KeyboardInterrupt):
        run_trial(SPEC, RECIPE, 0, data=data, reporter=stop, checkpoint_dir=folder)


def test_ctrl_c_that_a_librarys_cleanup_turned_into_its_own_error_still_stops_the_trial(
        data, tmp_path):
    """Seen in a full-suite run: Ctrl-C inside torch.save came out as torch's RuntimeError
    ("unexpected pos ...") from its zip writer's cleanup; the trial was recorded failed and
    the suite went on, exit 0. The interrupt must win: the run stops, nothing is recorded."""
    def stop(e, metrics):
        if e == 2:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt:
                raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")
        return False

    with pytest.raises(KeyboardInterrupt):
        run_trial(SPEC, RECIPE, 0, data=data, reporter=stop, checkpoint_dir=tmp_path)
    assert (tmp_path / CHECKPOINT).is_file()  # epoch 2's state kept: a rerun resumes


def test_interrupted_finds_a_ctrl_c_anywhere_in_an_errors_chain():
    from resbench.errors import interrupted

    def raised(make):
        try:
            make()
        except BaseException as e:  # noqa: BLE001
            return e

    def cleanup_fails():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise OSError("close failed")

    def wrapped():
        try:
            cleanup_fails()
        except OSError as e:
            raise RuntimeError("outer") from e

    assert interrupted(raised(cleanup_fails)) and interrupted(raised(wrapped))
    assert not interrupted(raised(lambda: 1 / 0))
    assert not interrupted(RuntimeError("no chain"))


def same_curves(a, b) -> bool:
    keys = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")
    return [[getattr(c, k) for k in keys] for c in a.curves] == \
        [[getattr(c, k) for k in keys] for c in b.curves]


def test_each_epoch_keeps_the_previous_checkpoint(data, tmp_path):
    interrupted_after(2, data, tmp_path)
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / PREVIOUS, weights_only=True)["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_a_checkpoint"])
def test_a_corrupt_checkpoint_is_set_aside_and_the_trial_resumes_from_the_one_before(
        data, full, tmp_path, damage):
    interrupted_after(2, data, tmp_path)
    last = tmp_path / CHECKPOINT
    if damage == "truncate":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "garbage":
        last.write_bytes(b"\x00\xffnot a zip" * 100)
    else:
        torch.save({"epoch": 2}, last)
    with pytest.warns(RuntimeWarning, match=r"last\.pt: cannot resume from this checkpoint .*"
                                            r"set aside as last\.pt\.corrupt; trying the one before"):
        record = run_trial(SPEC, RECIPE, 0, data=data, checkpoint_dir=tmp_path)
    assert record.status == "completed" and record.resumed_from_epoch == 1
    assert same_curves(record, full)  # continued exactly from epoch 1
    assert (tmp_path / (CHECKPOINT + ".corrupt")).is_file()


def test_with_every_checkpoint_corrupt_the_trial_starts_again(data, full, tmp_path):
    interrupted_after(2, data, tmp_path)
    for name in (CHECKPOINT, PREVIOUS):
        (tmp_path / name).write_bytes(b"corrupt")
    with pytest.warns(RuntimeWarning, match="starting the trial again"):
        record = run_trial(SPEC, RECIPE, 0, data=data, checkpoint_dir=tmp_path)
    assert record.status == "completed" and "resumed_from_epoch" not in record.to_json()
    assert same_curves(record, full)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_loss_that_explodes_but_stays_finite_is_diverged(data, optimizer):
    recipe = parse_recipe({**TINY_RECIPE, "optimizer": {"name": optimizer, "lr": 1000.0}})
    record = run_trial(SPEC, recipe, 0, data=data)
    assert record.status == "diverged"
    assert "exceeds divergence_factor 10000 x the starting loss" in record.reason
    loose = parse_recipe({**TINY_RECIPE, "optimizer": {"name": optimizer, "lr": 1000.0},
                          "divergence_factor": 1e30})
    assert run_trial(SPEC, loose, 0, data=data).status == "completed"  # the bound is the recipe's


@pytest.mark.parametrize("lr", [1e39, 1e300])
def test_numeric_overflow_in_training_is_diverged(data, lr):
    recipe = parse_recipe({**TINY_RECIPE, "optimizer": {"lr": lr}})
    record = run_trial(SPEC, recipe, 0, data=data)
    assert record.status == "diverged" and record.reason.startswith("numeric overflow at step 0")
    assert record.traceback is None


def test_divergence_factor_enters_the_trial_key_only_when_not_the_default():
    base = parse_recipe(TINY_RECIPE)
    assert "divergence_factor" not in base.trial_dict()
    assert parse_recipe({**TINY_RECIPE, "divergence_factor": 1e4}).trial_dict() == base.trial_dict()
    assert parse_recipe({**TINY_RECIPE, "divergence_factor": 100}).trial_dict() == \
        {**base.trial_dict(), "divergence_factor": 100.0}
    assert parse_recipe({**TINY_RECIPE, "divergence_factor": None}).trial_dict()[
        "divergence_factor"] is None


def test_the_starting_loss_survives_a_resume(data, tmp_path):
    interrupted_after(1, data, tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert 1.0 < state["loop"]["start_loss"] < 2.0  # ln(4 classes) at initialisation
