"""Bad flags end in one ``error: argument --flag: ...`` line and exit 2, before any work."""
from __future__ import annotations

import pytest

from resbench.cli import main

SPEC = "stem: cifar\nnum_classes: 10\nstages: [{depth: 1, width: 8}]\n"


def flag_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize("argv, fragment", [
    (["search", "s.yaml", "--sampler-seed", "-1"], "--sampler-seed: a seed must be in [0, 2^32)"),
    (["search", "s.yaml", "--sampler-seed", str(2**32)], "a seed must be in [0, 2^32)"),
    (["search", "s.yaml", "--sampler-seed", "1e3"], "'1e3' is not an integer"),
    (["search", "s.yaml", "--seed", str(2**70)], "--seed: a seed must be in"),
    (["bench", "--seeds", "0", str(2**70)], "--seeds: a seed must be in"),
    (["bench", "--threads", "100000"], "--threads: must be 0 (torch's default) or a thread count"),
    (["bench", "--threads", "-1"], "--threads: must be 0"),
    (["bench", "--epochs", "0"], "--epochs: must be an integer >= 1"),
    (["bench", "--experiment", ""], "--experiment: must not be empty"),
    (["bench", "--experiment", "e" * 300], "--experiment: is 300 characters long"),
    (["search", "s.yaml", "--experiment", " "], "--experiment: must not be empty"),
    (["search", "s.yaml", "--objective", ""], "--objective: must not be empty"),
    (["bench", "--results", ""], "--results: must name a results folder"),
    (["bench", "--results", "/proc"], "under /proc, a kernel file system"),
    (["search", "s.yaml", "--results", "/sys/kernel"], "under /sys"),
    (["bench", "--results", "a\0b"], "contains a NUL byte"),
    (["search", "s.yaml", "--storage", ""], "--storage: must be an RDB URL"),
    (["search", "s.yaml", "--storage", "study.db"], "is not a URL; an SQLite file is sqlite:///PATH"),
    (["search", "s.yaml", "--storage", "://"], "is not a valid RDB URL"),
    (["search", "s.yaml", "--storage", "nosuchdb://host/x"], "no database dialect 'nosuchdb'"),
    (["search", "s.yaml", "--storage", "sqlite://"], "in-memory SQLite study"),
    (["search", "s.yaml", "--storage", "sqlite:///:memory:"], "in-memory SQLite study"),
    (["search", "s.yaml", "--storage", "sqlite:////no/such/folder/x.db"], "does not exist"),
    (["show", "s.yaml", "--input-size", "-3"], "--input-size: must be an integer >= 1"),
    (["show", "s.yaml", "--input-size", "1000000000"], "--input-size: must be at most 16384"),
    (["report", "r", "-o", "/proc/out"], "-o/--out: '/proc/out' is under /proc"),
    (["bench", "--bogus"], "unrecognized arguments: --bogus"),
    (["validate", ""], "must name a file or folder, not be empty"),
    (["search", "s.yaml", "--workers", "1000000"], "--workers: must be at most 1024"),
    (["search", "s.yaml", "--retries", "-1"], "--retries: must be an integer from 0 to 100"),
    (["search", "s.yaml", "--cpus-per-trial", "nan"], "--cpus-per-trial: must be a finite number"),
    (["search", "s.yaml", "--gpus-per-trial", "-0.5"], "--gpus-per-trial: must be a finite"),
    (["search", "s.yaml", "--max-concurrent", "0"], "--max-concurrent: must be an integer >= 1"),
    (["show", ""], "must name a file or folder"),
    (["bench", ""], "must name a file or folder"),
    (["search", ""], "must name a file or folder"),
    (["report", "", "-o", "out"], "must name a file or folder"),
    (["validate", "a\0b.yaml"], "contains a NUL byte"),
])
def test_bad_flags_are_one_error_line(capsys, argv, fragment):
    assert fragment in flag_error(capsys, *argv)


def test_results_naming_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    err = flag_error(capsys, "bench", "--results", str(tmp_path / "file"))
    assert "is a file, not a folder" in err
    err = flag_error(capsys, "search", "s.yaml", "--storage", f"sqlite:///{tmp_path}")
    assert "is not a regular file" in err


def test_good_flag_values_pass(tmp_path):
    from resbench import cli_types

    assert cli_types.seed32("4294967295") == 2**32 - 1
    assert cli_types.threads("0") == 0 and cli_types.threads("1024") == 1024
    assert cli_types.storage(f"sqlite:///{tmp_path}/study.db")
    assert cli_types.results_root(str(tmp_path / "new")) == str(tmp_path / "new")


def test_validate_needs_some_spec_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["validate", str(tmp_path / "empty")]) == 2
    assert "error: no spec files" in capsys.readouterr().err
    (tmp_path / "ok.yaml").write_text(SPEC)
    assert main(["validate", str(tmp_path / "ok.yaml")]) == 0
