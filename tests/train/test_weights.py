"""Final weights: every completed trial keeps its state_dict in the store, ``load_model`` gives
the trained net back (spec from the record), and ``transfer.init`` accepts a stored trial."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resbench.errors import UserError
from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe
from resbench.store import Store, load_model, weights_file
from resbench.train import run_suite
from resbench.train.suite import load_suite
from resbench.train.trial import initial_model, load_data, run_trial

from .conftest import TINY_RECIPE, TINY_SPEC, write_yaml

SPEC = parse_spec({**TINY_SPEC, "name": "tiny"})


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    spec = write_yaml(root.parent / "specs" / "tiny.yaml", TINY_SPEC)
    suite = write_yaml(root.parent / "suite.yaml", {"name": "w", "specs": [str(spec)],
                                                    "seeds": [0], "recipe": TINY_RECIPE})
    run_suite(load_suite(suite), results_root=root, progress="none")
    return root


def test_a_completed_trial_keeps_its_final_weights_and_load_model_returns_the_trained_net(suite_run):
    (record,) = Store(suite_run / "w").records()
    assert record.status == "completed" and record.weights == f"weights/{record.key}.pt"
    state = torch.load(suite_run / "w" / record.weights, weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_model(suite_run, record.key)  # a results root: the key is looked up
    assert not model.training
    # The trained net: it reproduces the trial's last validation accuracy exactly.
    data = load_data(parse_recipe(record.recipe).data)
    x = torch.stack([data.val[i][0] for i in range(len(data.val))])
    y = torch.tensor([int(data.val[i][1]) for i in range(len(data.val))])
    with torch.no_grad():
        acc = int((model(x).argmax(1) == y).sum()) / len(y)
    assert acc == pytest.approx(record.metrics.final_val_acc, abs=1e-9)
    assert weights_file(suite_run / "w", record) == (suite_run / "w" / record.weights).resolve()


def test_save_weights_false_keeps_none_and_leaves_the_key_alone(tmp_path: Path):
    data = load_data(parse_recipe(TINY_RECIPE).data)
    recipe = parse_recipe({**TINY_RECIPE, "epochs": 1, "save_weights": False})
    kept = run_trial(SPEC, parse_recipe({**TINY_RECIPE, "epochs": 1}), 0, data=data,
                     store_dir=tmp_path / "a")
    skipped = run_trial(SPEC, recipe, 0, data=data, store_dir=tmp_path / "b")
    assert kept.key == skipped.key and kept.weights is not None
    assert skipped.weights is None and not (tmp_path / "b" / "weights").exists()
    store = Store(tmp_path / "b")
    store.write_record(skipped)
    with pytest.raises(UserError, match="no saved weights"):
        load_model(tmp_path / "b", skipped.key)


def test_a_pruned_trial_keeps_no_weights(tmp_path: Path):
    record = run_trial(SPEC, parse_recipe(TINY_RECIPE), 0, store_dir=tmp_path,
                       reporter=lambda epoch, row: True)
    assert record.status == "pruned" and record.weights is None
    assert not (tmp_path / "weights").exists()


def test_transfer_init_accepts_a_stored_trial_record(suite_run):
    (record,) = Store(suite_run / "w").records()
    trained = load_model(suite_run / "w", record).state_dict()
    recipe = parse_recipe({**TINY_RECIPE, "transfer": {
        "init": str(suite_run / "w" / "trials" / f"{record.key}.json")}})
    model = initial_model(parse_spec(record.spec), recipe, 5)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_an_unknown_trial_is_a_user_error(suite_run):
    with pytest.raises(UserError, match="no trial record 'ffffffffffffffff'"):
        load_model(suite_run, "ffffffffffffffff")
