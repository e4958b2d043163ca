"""The results store: layout, atomic records, name validation, loading into DataFrames."""
from __future__ import annotations

import json
import os
from importlib import metadata
import subprocess
import sys
from pathlib import Path

import pytest

from resbench.errors import UserError
from resbench.store import (
    CurveRow,
    GradFlowRow,
    Metrics,
    SearchInfo,
    Store,
    TrialRecord,
    experiment_dir,
    load,
    load_curves,
    load_grad_flow,
    trial_key,
)


def make_record(key: str, experiment: str = "exp", *, seed: int = 0, status: str = "completed",
                acc: float = 0.8125, lr: float = 0.1) -> TrialRecord:
    return TrialRecord(
        key=key, experiment=experiment, spec_name="resnet20", spec_key="abcd" * 4,
        spec={"name": "resnet20", "block": "basic"},
        summary={"block": "basic", "shortcut": "zero_pad", "depth": 20, "width": 16,
                 "widths": "16-32-64", "depths": "3-3-3"},
        recipe={"optimizer": {"name": "sgd", "lr": lr}, "epochs": 2, "milestones": [1, 2]},
        seed=seed, status=status, reason=None if status == "completed" else "loss nan",
        metrics=Metrics(params=272474, macs=40813184, best_val_acc=acc,
                        final_val_acc=acc - 0.0625, epochs=2, images_per_s=1234.5),
        curves=[CurveRow(epoch=e, train_loss=2.0 / e, val_acc=acc * e / 2) for e in (1, 2)],
        grad_flow=[GradFlowRow(step=0, block=f"layer1.{i}", index=i, grad_norm=0.5 + i)
                   for i in range(3)],
        search=SearchInfo(runner="optuna", study="s", trial_number=3, params={"lr": lr}),
        started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
    )


def test_trial_key_is_stable_and_sensitive():
    spec, recipe = {"stages": [{"depth": 3}], "block": "basic"}, {"lr": 0.1, "epochs": 2}
    key = trial_key(spec, recipe, 0)
    # sha256 of the documented canonical JSON, truncated: folders on disk depend on this value
    assert key == "e0bb380eb7a5599a"
    assert trial_key(dict(reversed(list(spec.items()))), recipe, 0) == key  # key order is irrelevant
    assert trial_key(spec, recipe, 1) != key
    assert trial_key(spec, {"lr": 0.2, "epochs": 2}, 0) != key


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", ".", "..", "a\\b", "x y"])
def test_bad_experiment_names_are_refused(name, tmp_path):
    with pytest.raises(UserError, match="experiment name"):
        experiment_dir(name, root=tmp_path)


def test_good_experiment_name_stays_inside_root(tmp_path):
    path = experiment_dir("degradation-v1.2_a", root=tmp_path)
    assert path == (tmp_path / "degradation-v1.2_a").resolve()


def test_record_round_trip_to_dataframe_exact_numbers(tmp_path):
    store = Store(tmp_path / "exp")
    store.write_record(make_record("k1", acc=0.8125, lr=0.05))
    store.write_record(make_record("k2", seed=1, status="diverged", acc=0.1, lr=0.4))
    assert store.keys() == ["k1", "k2"]
    assert store.read_record("k1") == make_record("k1", acc=0.8125, lr=0.05)

    df = load(tmp_path / "exp")
    assert list(df.columns[:7]) == ["experiment", "key", "spec_name", "spec_key", "seed",
                                    "status", "reason"]
    df = df.set_index("key")
    assert df.loc["k1", "best_val_acc"] == 0.8125
    assert df.loc["k1", "final_val_acc"] == 0.75
    assert df.loc["k1", "params"] == 272474
    assert df.loc["k1", "recipe.optimizer.lr"] == 0.05
    assert df.loc["k2", "recipe.optimizer.lr"] == 0.4
    assert df.loc["k1", "recipe.milestones"] == (1, 2)
    assert df.loc["k1", "search.params.lr"] == 0.05
    assert df.loc["k1", "search.trial_number"] == 3
    assert df.loc["k2", "status"] == "diverged" and df.loc["k2", "reason"] == "loss nan"
    assert df.loc["k2", "seed"] == 1
    assert df.loc["k1", "widths"] == "16-32-64" and df.loc["k1", "depth"] == 20

    curves = load_curves(tmp_path / "exp")
    assert len(curves) == 4
    k2 = curves[curves.key == "k2"].set_index("epoch")
    assert k2.loc[2, "val_acc"] == 0.1 and k2.loc[1, "train_loss"] == 2.0
    assert set(curves.columns) >= {"experiment", "key", "spec_name", "seed", "status"}
    flow = load_grad_flow(tmp_path / "exp")
    assert len(flow) == 6
    assert list(flow[flow.key == "k1"].grad_norm) == [0.5, 1.5, 2.5]


def test_non_finite_numbers_are_stored_as_null(tmp_path):
    store = Store(tmp_path / "exp")
    record = make_record("k1", status="diverged")
    record.metrics.final_train_loss = float("nan")
    store.write_record(record)
    text = (tmp_path / "exp" / "trials" / "k1.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert store.read_record("k1").metrics.final_train_loss is None


def test_leftover_temp_file_from_a_crash_is_ignored(tmp_path):
    store = Store(tmp_path / "exp")
    store.write_record(make_record("k1"))
    # A writer killed mid-write leaves only its temp file; the real record is never half-written.
    (store.trials_dir / ".k2.json.x1y2.tmp").write_text('{"key": "k2", "stat')
    assert store.keys() == ["k1"]
    assert [r.key for r in store.records()] == ["k1"]
    assert list(load(tmp_path / "exp").key) == ["k1"]
    assert not store.has("k2")


def test_killed_writer_leaves_old_record_or_new_one(tmp_path):
    """Kill a process that rewrites a record in a loop: the file always parses as a whole record."""
    store = Store(tmp_path / "exp")
    store.write_record(make_record("k1"))
    script = (
        "import sys\n"
        "from resbench.store import Store\n"
        "from tests.store.test_store import make_record\n"
        "s = Store(sys.argv[1]); r = make_record('k1')\n"
        "r.curves = r.curves * 5000\n"
        "i = 0\n"
        "while True:\n"
        "    r.metrics.epochs = i; s.write_record(r); i += 1\n"
        "    if i == 3: print('writing', flush=True)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "exp")], cwd=repo,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    record = store.read_record("k1")
    assert len(record.curves) in (2, 10000)
    assert [r.key for r in store.records()] == ["k1"]


def test_has_filters_by_status(tmp_path):
    store = Store(tmp_path / "exp")
    store.write_record(make_record("done"))
    store.write_record(make_record("broke", status="failed"))
    assert store.has("done") and store.has("broke")
    assert not store.has("broke", statuses=("completed",))
    assert not store.has("missing")


def test_write_record_refuses_unknown_status_and_unsafe_key(tmp_path):
    store = Store(tmp_path / "exp")
    with pytest.raises(ValueError, match="status"):
        store.write_record(make_record("k", status="finished"))
    with pytest.raises(UserError, match="trial key"):
        store.write_record(make_record("../escape"))
    with pytest.raises(ValueError, match="needs spec_key"):
        store.write_record({"key": "k", "experiment": "e", "spec_name": "n", "seed": 0,
                            "status": "completed"})


def test_manifest_merges_and_keeps_created_time(tmp_path):
    store = Store(tmp_path / "exp")
    first = store.write_manifest({"kind": "suite", "recipe": {"epochs": 1}, "device": "cpu"})
    assert first["name"] == "exp" and first["kind"] == "suite"
    assert first["versions"]["python"] == sys.version.split()[0]
    assert first["versions"]["torch"] == metadata.version("torch")  # without importing torch
    assert "created" in first and "git_commit" in first
    second = store.write_manifest({"specs": ["resnet20"]})
    assert second["created"] == first["created"]
    assert second["kind"] == "suite" and second["specs"] == ["resnet20"]
    assert store.read_manifest() == second


def test_store_import_does_not_import_torch_or_pandas():
    code = ("import sys, resbench.store as s, tempfile; d = tempfile.mkdtemp(); "
            "s.Store(d).write_manifest({}); "
            "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_load_many_folders_and_a_results_root(tmp_path):
    for exp, n in (("a", 2), ("b", 3)):
        store = Store(experiment_dir(exp, root=tmp_path))
        store.write_manifest({"kind": "suite"})
        for i in range(n):
            store.write_record(make_record(f"{exp}{i}", experiment=exp, seed=i))
    (tmp_path / "not-an-experiment").mkdir()
    both = load([tmp_path / "a", tmp_path / "b"])
    assert sorted(both.key) == ["a0", "a1", "b0", "b1", "b2"]
    assert both.groupby("experiment").size().to_dict() == {"a": 2, "b": 3}
    root = load(tmp_path)
    assert sorted(root.key) == sorted(both.key)
    assert len(load([tmp_path / "a", tmp_path / "a"])) == 2  # the same folder counts once


def test_missing_and_empty_folders_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no experiment here"):
        load(tmp_path / "empty")
    Store(tmp_path / "started").write_manifest({"kind": "search"})
    with pytest.raises(UserError, match="no trial records"):
        load(tmp_path / "started")


@pytest.mark.parametrize("content, message", [
    ('{"key": "bad", "status": "compl', "not valid JSON"),
    ('{"key": "bad", "status": "completed"}', "missing required keys: experiment, spec_name"),
    ('[1, 2]', "must be a JSON object"),
    (json.dumps({**make_record("bad").to_json(), "status": "done"}), "status 'done'"),
    (json.dumps({**make_record("bad").to_json(), "metrics": [1]}),
     "'metrics' must be a JSON object"),
])
def test_corrupt_record_names_the_file(tmp_path, content, message):
    store = Store(tmp_path / "exp")
    store.write_record(make_record("good"))
    (store.trials_dir / "bad.json").write_text(content)
    with pytest.raises(UserError, match=message) as err:
        load(tmp_path / "exp")
    assert str(store.trials_dir / "bad.json") in str(err.value)
    with pytest.raises(UserError, match="bad.json"):
        list(store.records())
    with pytest.warns(UserWarning, match="bad.json"):
        df = load(tmp_path / "exp", strict=False)
    assert list(df.key) == ["good"]
    with pytest.warns(UserWarning, match="bad.json"):
        assert [r.key for r in store.records(strict=False)] == ["good"]


def test_manifest_corrupt_is_user_error(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "manifest.json").write_text("{oops")
    with pytest.raises(UserError, match="manifest.json: not valid JSON"):
        Store(tmp_path / "exp").read_manifest()


def test_load_curves_with_no_curves_has_columns(tmp_path):
    record = make_record("k1")
    record.curves = []
    Store(tmp_path / "exp").write_record(record)
    curves = load_curves(tmp_path / "exp")
    assert curves.empty and {"key", "epoch", "experiment"} <= set(curves.columns)


def test_records_are_plain_files_in_trials_folder(tmp_path):
    store = Store(tmp_path / "exp")
    path = store.write_record(make_record("k1"))
    assert path == tmp_path / "exp" / "trials" / "k1.json"
    assert os.listdir(store.trials_dir) == ["k1.json"]
