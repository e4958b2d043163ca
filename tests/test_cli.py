"""The command line as a user meets it: exit codes, messages without tracebacks, --help."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SPECS


def resbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "resbench.cli", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_validate_accepts_the_whole_spec_library():
    out = resbench("validate", str(SPECS))
    assert out.returncode == 0, out.stderr
    assert "resnet56" in out.stdout and "56 layers" in out.stdout


def test_a_bad_spec_exits_2_with_file_field_and_suggestion_but_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("_base_: " + str(SPECS / "cifar" / "resnet56.yaml") + "\nshortcut: identiy\n")
    out = resbench("validate", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert f"{bad}: shortcut: unknown value 'identiy'" in out.stderr
    assert "did you mean 'identity'" in out.stderr


def test_show_prints_a_table_per_stage_with_totals():
    out = resbench("show", str(SPECS / "cifar" / "resnet56.yaml"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("layer3") and "64x8x8" in line for line in lines)
    total = next(line for line in lines if line.startswith("total"))
    assert "853,018" in total


def test_show_of_a_missing_file_is_a_user_error():
    out = resbench("show", "no/such.yaml")
    assert out.returncode == 2 and "file not found" in out.stderr and "Traceback" not in out.stderr


def test_schema_is_json_schema_that_accepts_library_specs_and_rejects_typos():
    import jsonschema

    out = resbench("schema")
    assert out.returncode == 0
    schema = json.loads(out.stdout)
    checked = 0
    from resbench.spec.load import iter_spec_files, load_raw

    for path in iter_spec_files([SPECS]):
        jsonschema.validate(load_raw(path), schema)  # the file with its _base_ chain merged
        checked += 1
    assert checked >= 10
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"stem": "cifar", "stages": [{"depth": 1, "width": 8}],
                             "shortcutt": "x"}, schema)


@pytest.mark.parametrize("command", ["validate", "show", "schema", "bench", "search", "report"])
def test_every_command_has_help(command):
    out = resbench(command, "--help")
    assert out.returncode == 0 and "usage: resbench" in out.stdout


def _entry_points(target, results) -> dict[str, list[str]]:
    """The same bench run through each entry point a user has."""
    from tests.conftest import REPO

    args = [str(target), "--results", str(results), "--progress", "log"]
    return {"resbench bench": [sys.executable, "-m", "resbench.cli", "bench", *args],
            "run_bench.py": [sys.executable, str(REPO / "run_bench.py"), *args, "--no-report"]}


@pytest.mark.parametrize("flags, message", [
    ([], "error: {target}: no such suite or spec file\n"),
    (["--threads", "-1"], "error: argument --threads: must be 0 (torch's default) or a thread "
                          "count up to 1024 (this machine has {cores} cores), got -1 "
                          "(see {prog} --help)\n"),
])
def test_every_entry_point_reports_a_user_error_the_same_way(tmp_path, flags, message):
    target = tmp_path / "missing.yaml"
    if flags:
        target.write_text("stem: cifar\nshortcut: zero_pad\nstages: [{depth: 1, width: 8}]\n")
    progs = {"resbench bench": "resbench bench", "run_bench.py": "run_bench.py"}
    for name, command in _entry_points(target, tmp_path / "r").items():
        out = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=120)
        expected = message.format(target=target, cores=os.cpu_count(), prog=progs[name])
        assert (out.returncode, out.stderr) == (2, expected), name


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials_and_exits_130_from_every_entry_point(tmp_path):
    import signal
    import time

    import yaml

    from tests.train.conftest import TINY_RECIPE, TINY_SPEC

    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**TINY_SPEC, "recipe": {**TINY_RECIPE, "epochs": 40,
                                                             "seeds": [0, 1, 2]}}))
    for name in ("resbench bench", "run_bench.py"):
        results = tmp_path / name.replace(" ", "_")
        command = _entry_points(spec, results)[name]
        trials = results / "tiny" / "trials"
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not any(trials.glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (name, err)
        assert err.endswith("\ninterrupted; finished work is kept and a rerun resumes\n"), name
        assert "Traceback" not in err
        assert 1 <= len(list(trials.glob("*.json"))) < 3  # what finished is on disk
