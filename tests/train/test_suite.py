"""Suites end to end on tiny specs: records, statuses, curves, gradient flow, skipping, errors."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from resbench.errors import SpecError
from resbench.store import Store, load
from resbench.train.suite import load_suite, load_target, run_suite

from .conftest import TINY_RECIPE, write_yaml


def test_tiny_suite_end_to_end(tiny_suite: Path, tmp_path: Path):
    result = run_suite(load_suite(tiny_suite), results_root=tmp_path / "results", progress="none")
    assert (result.ran, result.skipped) == (4, 0)
    records = result.records
    assert sorted((r.spec_name, r.seed) for r in records) == [
        ("tiny_plain", 0), ("tiny_plain", 1), ("tiny_res", 0), ("tiny_res", 1)]
    for r in records:
        assert r.status == "completed" and r.reason is None
        assert r.experiment == "tiny"
        assert r.spec["input_channels"] == 1 and r.spec["num_classes"] == 4  # from the data
        assert [c.epoch for c in r.curves] == [1, 2]
        for c in r.curves:
            assert 0 <= c.train_acc <= 1 and 0 <= c.val_acc <= 1
            assert math.isfinite(c.train_loss) and c.images_per_s > 0 and c.lr >= 0
        m = r.metrics
        assert m.params > 0 and m.macs > 0 and m.epochs == 2
        assert m.latency_ms_b1 > 0 and m.latency_ms_bn > 0 and m.latency_batch == 8
        assert m.peak_memory_bytes > 0 and m.peak_memory_kind == "process_max_rss"
        assert m.final_train_loss == r.curves[-1].train_loss
        steps = sorted({g.step for g in r.grad_flow})
        assert steps == [0, 2]
        assert [g.block for g in r.grad_flow if g.step == 0] == ["layer1.0", "layer2.0"]
        assert all(math.isfinite(g.grad_norm) and g.grad_norm > 0 for g in r.grad_flow)
    # distinct seeds really train differently; the same seed is reproducible (see test_trial)
    res = {r.seed: r.metrics.final_train_loss for r in records if r.spec_name == "tiny_res"}
    assert res[0] != res[1]
    store = Store(result.experiment_dir)
    manifest = store.read_manifest()
    assert manifest["kind"] == "suite" and set(manifest["specs"]) == {"tiny_plain", "tiny_res"}
    assert manifest["seeds"] == [0, 1] and len(manifest["trials"]) == 4
    assert not (result.experiment_dir / "checkpoints").exists() or \
        not any((result.experiment_dir / "checkpoints").iterdir())
    frame = load(result.experiment_dir)
    assert len(frame) == 4 and set(frame["status"]) == {"completed"}

    again = run_suite(load_suite(tiny_suite), results_root=tmp_path / "results", progress="none")
    assert (again.ran, again.skipped) == (0, 4)
    assert [r.started_at for r in again.records] == [r.started_at for r in records]


def test_failures_are_recorded_and_the_suite_goes_on(tmp_path: Path, tiny_specs):
    """An override whose checkpoint does not fit fails each of its trials; the rest complete."""
    bad = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3)}, bad)
    suite = write_yaml(tmp_path / "suite.yaml", {
        "name": "failing", "specs": ["specs/*.yaml"], "seeds": [0], "recipe": TINY_RECIPE,
        "overrides": [{}, {"transfer": {"init": "wrong.pt"}}]})
    result = run_suite(load_suite(suite), results_root=tmp_path / "results", progress="none")
    by = {(r.spec_name, r.suite.override): r for r in result.records}
    assert len(by) == 4
    for name in ("tiny_plain", "tiny_res"):
        assert by[name, 0].status == "completed"
        failed = by[name, 1]
        assert failed.status == "failed"
        assert "checkpoint does not fit the model" in failed.reason
        assert "conv1.weight" in failed.reason and failed.curves == []
        assert failed.metrics.params > 0  # measured before training started
    # failed trials are finished: skipped on a rerun unless asked to retry
    assert run_suite(load_suite(suite), results_root=tmp_path / "results", progress="none").ran == 0
    retry = run_suite(load_suite(suite), results_root=tmp_path / "results", progress="none",
                      retry_failed=True)
    assert retry.ran == 2


def test_a_huge_learning_rate_is_recorded_as_diverged(tmp_path: Path, tiny_specs):
    recipe = {**TINY_RECIPE, "optimizer": {"lr": 1e30}}
    suite = write_yaml(tmp_path / "suite.yaml", {"name": "boom", "specs": ["specs/tiny_res.yaml"],
                                                 "recipe": recipe})
    [record] = run_suite(load_suite(suite), results_root=tmp_path / "r", progress="none").records
    assert record.status == "diverged"
    assert "non-finite training loss at step" in record.reason


def test_a_spec_file_runs_as_a_one_spec_suite(tmp_path: Path, tiny_specs):
    spec = write_yaml(tmp_path / "one.yaml", {**yaml_spec(tiny_specs["res"]),
                                             "recipe": {**TINY_RECIPE, "seeds": [3]}})
    suite = load_target(spec)
    assert suite.name == "one" and len(suite.entries) == 1
    result = run_suite(suite, results_root=tmp_path / "r", progress="none",
                       flags={"epochs": 1})
    [record] = result.records
    assert record.seed == 3 and record.metrics.epochs == 1
    assert record.recipe["epochs"] == 1 and result.experiment_dir.name == "one"


def yaml_spec(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def test_recipe_precedence_spec_then_suite_then_override_then_flags(tmp_path: Path):
    spec = write_yaml(tmp_path / "s.yaml", {"stem": "cifar", "shortcut": "zero_pad",
                                            "stages": [{"depth": 1, "width": 16, "stride": 1}],
                                            "recipe": {"epochs": 7, "batch_size": 16, "label_smoothing": 0.1,
                                                       "seeds": [4, 5]}})
    suite = write_yaml(tmp_path / "suite.yaml", {
        "specs": ["s.yaml"], "recipe": {"batch_size": 32, "optimizer": {"lr": 0.05}},
        "overrides": [{}, {"optimizer": {"lr": 0.01}, "epochs": 2}]})
    plans = load_suite(suite).plans({"batch_size": 8})
    assert [(p.seed, p.override) for p in plans] == [(4, 0), (4, 1), (5, 0), (5, 1)]
    base, override = plans[0].recipe, plans[1].recipe
    assert (base.epochs, base.label_smoothing, base.optimizer.lr, base.batch_size) == (7, 0.1, 0.05, 8)
    assert (override.epochs, override.optimizer.lr, override.batch_size) == (2, 0.01, 8)
    assert [p.seed for p in load_suite(suite).plans(seeds=(9,))] == [9, 9]


@pytest.mark.parametrize("content, path, fragment", [
    ({"specs": []}, "specs", "at least 1"),
    ({"name": "x"}, "specs", "required"),
    ({"specs": ["nothing/*.yaml"]}, "specs[0]", "no spec file matches"),
    ({"specs": ["specs/tiny_res.yaml"], "seed": [0]}, "seed", "did you mean 'seeds'"),
    ({"specs": ["specs/tiny_res.yaml"], "recipe": {"optimizer": {"name": "adam"}}},
     "recipe.optimizer.name", "allowed: sgd, adamw"),
    ({"specs": ["specs/tiny_res.yaml"], "overrides": [{}, {"epoch": 3}]},
     "overrides[1].epoch", "did you mean 'epochs'"),
    ({"specs": ["specs/tiny_res.yaml", "specs/tiny_res.yaml"]}, "specs", "unique"),
    ({"specs": "specs/tiny_res.yaml"}, "specs", "tuple"),
    ({"specs": ["specs/a\0.yaml"]}, "specs[0]", "a spec path contains a NUL byte"),
    ({"specs": ["s" * 300 + ".yaml"]}, "specs[0]", "path component of 305 bytes"),
    ({"specs": ["specs/tiny_res.yaml"], "seeds": [2**70]}, "seeds[0]", "less than 4294967296"),
    ({"specs": ["specs/tiny_res.yaml"], "name": "n" * 201}, "name", "at most 200 characters"),
])
def test_bad_suite_files_raise_spec_errors_with_file_and_path(tmp_path: Path, tiny_specs,
                                                              content, path, fragment):
    suite = write_yaml(tmp_path / "bad.yaml", content)
    with pytest.raises(SpecError) as info:
        load_suite(suite)
    assert info.value.file == str(suite) and info.value.path == path
    assert fragment in str(info.value)


def test_a_bad_spec_in_a_suite_names_the_spec_file(tmp_path: Path):
    write_yaml(tmp_path / "broken.yaml", {"stem": "cifar", "stages": [{"depth": 1, "width": 8,
                                                                        "stride": 1, "shortcut": "identiti"}]})
    suite = write_yaml(tmp_path / "suite.yaml", {"specs": ["broken.yaml"]})
    with pytest.raises(SpecError) as info:
        load_suite(suite)
    assert info.value.file.endswith("broken.yaml") and info.value.path == "stages[0].shortcut"


def test_invalid_yaml_is_a_spec_error(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("specs: [a.yaml\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        load_suite(suite)
