"""Command-line recipe overrides (``--set recipe.x=v``, ``--epochs``) on search and bench,
validated as files are; study metric names; a progress line that moves every epoch."""
from __future__ import annotations

import io

import pytest

from resbench.cli import main
from resbench.errors import SpecError
from resbench.search.optuna_study import open_study, running_epochs
from resbench.search.progress import Progress
from resbench.spec.recipe import set_layer
from resbench.store import Store
from tests.search.conftest import tiny_space
from tests.search.test_local import config


def test_set_layer_builds_a_recipe_layer_from_dotted_keys_and_yaml_values():
    assert set_layer(["recipe.epochs=5", "recipe.optimizer.lr=0.05",
                      "recipe.augment.hflip=true", "recipe.seeds=[1, 2]"]) == {
        "epochs": 5, "optimizer": {"lr": 0.05}, "augment": {"hflip": True}, "seeds": [1, 2]}
    assert set_layer(None) == {}


@pytest.mark.parametrize("given, message", [
    ("recipe.optimizer.lr=-1", "--set: recipe.optimizer.lr: Input should be greater than 0"),
    ("recipe.optimiser.lr=1", "unknown field 'optimiser'"),
    ("recipe.optimizer.name=sgdd", "--set: recipe.optimizer.name: unknown value 'sgdd' "
                                   "(allowed: sgd, adamw); did you mean 'sgd'?"),
    ("epochs=3", "--set: epochs: unknown section 'epochs'"),
    ("recipe.epochs", "expected KEY=VALUE"),
    ("recipe.epochs=[1", "--set: recipe.epochs: invalid YAML value"),
])
def test_set_layer_refuses_what_a_recipe_file_would(given, message):
    with pytest.raises(SpecError) as err:
        set_layer([given])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_search_epochs_and_set_reach_every_trial_and_the_study_names_its_metric(
        write_space, tmp_path, capsys):
    path = write_space(tiny_space(search={"sampler": "random", "experiment": "over"}))
    root = tmp_path / "results"
    code = main(["search", str(path), "--trials", "2", "--results", str(root), "--epochs", "2",
                 "--set", "recipe.optimizer.lr=0.05", "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    records = list(Store(root / "over").records())
    assert records and all(r.recipe["epochs"] == 2 and r.recipe["optimizer"]["lr"] == 0.05
                           for r in records)
    assert all(len(r.curves) == 2 for r in records if r.status == "completed")
    study = open_study(config(path, tmp_path), create=False)
    assert study.metric_names == ["val_acc"]  # optuna-dashboard shows val_acc
    assert main(["search", str(path), "--set", "recipe.batch_size=0"]) == 2
    assert "error: --set: recipe.batch_size: " in capsys.readouterr().err


def test_bench_set_is_the_top_recipe_layer(tmp_path, capsys):
    root = tmp_path / "r"
    code = main(["bench", "resnet20", "--results", str(root), "--seeds", "0", "--limit", "60",
                 "--progress", "none", "--set", "recipe.epochs=1",
                 "--set", "recipe.optimizer.lr=0.05"])
    assert code == 0, capsys.readouterr().err
    (record,) = Store(root / "resnet20").records()
    assert record.recipe["epochs"] == 1 and record.recipe["optimizer"]["lr"] == 0.05
    assert main(["bench", "resnet20", "--set", "recipe.optimizer.lr=-1"]) == 2
    assert "error: --set: recipe.optimizer.lr: Input should be greater than 0" in \
        capsys.readouterr().err


def test_the_progress_line_shows_the_epoch_of_running_trials(write_space, tmp_path):
    path = write_space(tiny_space(recipe={"epochs": 3}))
    cfg = config(path, tmp_path)
    cfg.path.mkdir(parents=True)
    study = open_study(cfg)
    trial = study.ask()
    trial.set_user_attr("epoch", 2)  # what the local runner's reporter records each epoch
    assert running_epochs(study) == {trial.number: 2}
    out = io.StringIO()
    progress = Progress("x", 4, stream=out)
    polls = []

    def poll():
        polls.append(1)
        return {"done": 0, "running": 1}, "best: none yet", running_epochs(study)

    with progress.watching(poll, every=0.05):
        while len(polls) < 3:
            pass
    assert "[x] 0/4 done | 1 running (#0 epoch 2) |" in out.getvalue()
