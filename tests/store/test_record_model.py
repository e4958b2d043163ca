"""The trial record model: records the earlier code wrote still load, unchanged; bad ones are
refused with the file and field; unknown fields are kept from files and refused in code."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from resbench.errors import UserError
from resbench.store import (
    STATUSES,
    CurveRow,
    Metrics,
    SearchInfo,
    Store,
    TrialRecord,
    load,
    load_curves,
)
from tests.store.test_store import make_record

V0 = Path(__file__).parent / "records_v0"
"""Records written by resbench before the TrialRecord model (commit 47defde): a suite's completed
and diverged trials, a local Optuna search's completed and infeasible ones, a Ray search's, and
a failed trial with its traceback; tiny nets on synthetic data, one epoch."""


def v0(name: str) -> dict:
    return json.loads((V0 / f"{name}.json").read_text())


@pytest.mark.parametrize("name", sorted(p.stem for p in V0.glob("*.json")))
def test_records_the_earlier_code_wrote_load_and_write_back_unchanged(name, tmp_path):
    raw = v0(name)
    record = TrialRecord.from_json(raw)
    assert record.to_json() == raw
    store = Store(tmp_path / "exp")
    path = store.write_record(record)
    assert json.loads(path.read_text()) == raw
    assert store.read_record(raw["key"]) == record


def test_earlier_records_read_as_typed_fields(tmp_path):
    suite, diverged = TrialRecord.from_json(v0("suite_completed")), TrialRecord.from_json(v0("suite_diverged"))
    assert suite.status == "completed" and suite.reason is None and suite.search is None
    assert suite.suite.name == "suite" and suite.suite.override == 0 and diverged.suite.override == 1
    assert suite.data.dataset == "synthetic" and suite.data.num_classes == 4
    assert suite.curves[0].epoch == 1 and 0 <= suite.curves[0].val_acc <= 1
    assert suite.grad_flow[0].block == "layer1.0" and suite.grad_flow[0].param_grad_norm > 0
    assert suite.metrics.peak_memory_kind == "process_max_rss" and suite.metrics.params > 0
    assert diverged.status == "diverged" and diverged.metrics.final_train_loss is None  # NaN → null
    optuna = TrialRecord.from_json(v0("optuna_completed"))
    assert optuna.search.runner == "optuna" and optuna.search.trial_number is not None
    assert optuna.attempts == 1 and optuna.search.ray is None
    ray = TrialRecord.from_json(v0("ray_completed"))
    assert ray.search.runner == "ray" and ray.search.ray.node_id
    assert ray.search.ray.started <= ray.search.ray.finished
    infeasible = TrialRecord.from_json(v0("ray_infeasible"))
    assert infeasible.status == "infeasible" and infeasible.curves == []
    assert infeasible.metrics.epochs == 0 and "max_params" in infeasible.reason
    failed = TrialRecord.from_json(v0("failed"))
    assert failed.status == "failed" and "Traceback" in failed.traceback
    assert failed.reason.startswith("RuntimeError: ")


def test_a_folder_of_earlier_records_loads_into_the_trial_table(tmp_path):
    for path in V0.glob("*.json"):
        folder = tmp_path / path.stem
        (folder / "trials").mkdir(parents=True)
        shutil.copy(path, folder / "trials" / f"{json.loads(path.read_text())['key']}.json")
    df = load(tmp_path)
    assert len(df) == 7 and set(df["status"]) == set(STATUSES) - {"pruned"}
    ray = df[df["experiment"] == "search_ray"].set_index("status")
    assert ray.loc["completed", "search.ray.node_id"] == v0("ray_completed")["search"]["ray"]["node_id"]
    assert ray.loc["completed", "best_val_acc"] == v0("ray_completed")["metrics"]["best_val_acc"]
    curves = load_curves(tmp_path)
    assert len(curves) == sum(len(v0(p.stem)["curves"]) for p in V0.glob("*.json"))


def test_unknown_fields_in_a_file_are_kept_but_refused_in_code(tmp_path):
    raw = {**v0("ray_completed"), "final_weights": "weights/abc.pt"}
    raw["search"] = {**raw["search"], "queue": "gpu-a"}
    record = TrialRecord.from_json(raw)
    assert record.get("final_weights") == "weights/abc.pt"
    record.reason = "rewritten"  # a record holding unknown fields can still be changed
    written = json.loads(Store(tmp_path).write_record(record).read_text())
    assert written["final_weights"] == "weights/abc.pt" and written["search"]["queue"] == "gpu-a"
    assert written["reason"] == "rewritten"
    with pytest.raises(ValueError, match="TrialRecord has no field atempts"):
        TrialRecord(**{**make_record("k").model_dump(exclude_unset=True), "atempts": 2})
    with pytest.raises(ValueError, match="SearchInfo has no field trial"):
        make_record("k").search = {"runner": "ray", "study": "s", "trial": 3}
    with pytest.raises(TypeError, match="TrialRecord has no field 'atempts'"):
        make_record("k").atempts = 2
    with pytest.raises(ValueError, match="CurveRow has no field val_accuracy"):
        CurveRow(epoch=1, val_accuracy=0.5)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["curves"][1].update(val_acc=97.5), r"'curves\[1\]\.val_acc': an accuracy is a fraction"),
    (lambda r: r["metrics"].update(params="many"), r"'metrics\.params': .*integer.* \(got 'many'\)"),
    (lambda r: r["search"].update(runner="slurm"), r"'search\.runner'.*'optuna' or 'ray'"),
    (lambda r: r.update(curves={"epoch": 1}), r"'curves' must be a JSON array"),
    (lambda r: r["grad_flow"][0].pop("block"), r"'grad_flow\[0\]\.block': Field required"),
])
def test_a_record_that_breaks_the_schema_is_refused_naming_file_and_field(tmp_path, change, message):
    store = Store(tmp_path / "exp")
    store.write_record(make_record("good"))
    raw = make_record("bad").to_json()
    change(raw)
    (store.trials_dir / "bad.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match=message) as err:
        store.read_record("bad")
    assert str(store.trials_dir / "bad.json") in str(err.value)
    with pytest.warns(UserWarning, match="bad.json"):
        assert [r.key for r in store.records(strict=False)] == ["good"]
    with pytest.raises(ValueError, match=message):  # and a writer cannot store it either
        store.write_record(raw)


def test_the_file_holds_what_the_writer_set(tmp_path):
    record = TrialRecord(key="k", experiment="e", spec_name="n", spec_key="s", seed=0,
                         status="infeasible", reason="params 9 > max_params 8",
                         metrics=Metrics(params=9, epochs=0),
                         search=SearchInfo(runner="optuna", study="e", trial_number=0))
    written = json.loads(Store(tmp_path).write_record(record).read_text())
    assert written == {"key": "k", "experiment": "e", "spec_name": "n", "spec_key": "s",
                       "seed": 0, "status": "infeasible", "reason": "params 9 > max_params 8",
                       "metrics": {"params": 9, "epochs": 0},
                       "search": {"runner": "optuna", "study": "e", "trial_number": 0}}
    read = Store(tmp_path).read_record("k")
    assert read.curves == [] and read.suite is None and read.metrics.best_val_acc is None
