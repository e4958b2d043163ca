"""Fault injection into the store: corrupt and swapped records, links out of the results root,
bad names, a full disk and a read-only folder (real tmpfs and read-only bind mounts)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from resbench.cli import main
from resbench.errors import UserError
from resbench.store import Store, StoreWriteError, check, experiment_dir, load, move_aside
from tests.store.test_store import make_record


def two_records(tmp_path: Path) -> Store:
    store = Store(tmp_path / "results" / "exp")
    store.write_manifest({"kind": "suite"})
    store.write_record(make_record("k1", acc=0.75))
    store.write_record(make_record("k2", seed=1, acc=0.5))
    return store


def test_a_record_copied_over_another_is_refused_and_never_counts_finished(tmp_path):
    store = two_records(tmp_path)
    shutil.copy(store.record_path("k1"), store.record_path("k2"))
    with pytest.raises(UserError, match=r"k2\.json: the record's key 'k1' is not its file name"):
        store.has("k2")
    with pytest.raises(UserError, match="k2.json"):
        load(store.path)
    with pytest.warns(UserWarning, match="k2.json"):
        frame = load(store.path, strict=False)
    assert list(frame["key"]) == ["k1"]  # the copy never counts as k2's result


def test_random_bytes_in_a_record_name_the_file(tmp_path):
    store = two_records(tmp_path)
    store.record_path("k2").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match=r"k2\.json: not UTF-8 text"):
        store.read_record("k2")
    store.record_path("k2").write_text("[" * 100_000)
    with pytest.raises(UserError, match=r"k2\.json: not valid JSON"):
        store.read_record("k2")
    store.record_path("k2").write_text('{"key": ' + "9" * 5000 + "}")
    with pytest.raises(UserError, match=r"k2\.json: not valid JSON"):
        store.read_record("k2")
    os.truncate(store.record_path("k2"), 65 * 2**20)  # sparse: a huge file, refused unparsed
    with pytest.raises(UserError, match=r"k2\.json: larger than 64 MiB"):
        store.read_record("k2")


def test_store_check_lists_every_bad_file_and_moves_them_aside(tmp_path, capsys):
    store = two_records(tmp_path)
    shutil.copy(store.record_path("k1"), store.record_path("k2"))  # key mismatch
    (store.trials_dir / "k3.json").write_bytes(b"\xff\xfe garbage")  # random bytes
    (store.trials_dir / "k4.json").write_text(json.dumps({**make_record("k4").to_json(),
                                                          "status": "finished"}))  # schema
    (store.trials_dir / ".k1.json.x.tmp").write_text("{")  # a killed writer's temp file
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(make_record("k5").to_json()))
    (store.trials_dir / "k5.json").symlink_to(outside)  # a link out of the results root
    root = tmp_path / "results"

    assert main(["store", "check", str(root)]) == 1
    out = capsys.readouterr().out
    for name, reason in [("k2", "is not its file name"), ("k3", "not UTF-8"),
                         ("k4", "status 'finished' is not one of"), ("k5", "outside the results")]:
        assert f"{store.trials_dir / name}.json: " in out and reason in out
    assert ".k1.json.x.tmp: a temp file" in out
    assert len(check(root)) == 5

    assert main(["store", "check", str(root), "--move-aside"]) == 0
    assert sorted(p.name for p in (store.path / "quarantine" / "trials").iterdir()) == \
        [".k1.json.x.tmp", "k2.json", "k3.json", "k4.json", "k5.json"]
    assert outside.is_file()  # the link was moved, not what it points to
    assert check(root) == [] and store.keys() == ["k1"]
    assert main(["store", "check", str(root)]) == 0
    assert not store.has("k2")  # a rerun trains it again


def test_store_check_of_a_folder_without_experiments_is_a_user_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["store", "check", str(tmp_path / "empty")]) == 2
    assert "error: " in capsys.readouterr().err


def test_move_aside_keeps_an_earlier_quarantined_file(tmp_path):
    store = two_records(tmp_path)
    for _ in range(2):
        store.record_path("k2").write_text("not json")
        move_aside(check(store.path))
    assert sorted(p.name for p in (store.path / "quarantine" / "trials").iterdir()) == \
        ["k2.json", "k2.json.1"]


@pytest.mark.parametrize("folder", ["trials", "checkpoints"])
def test_a_symlinked_folder_inside_an_experiment_leading_out_is_refused(tmp_path, folder):
    store = two_records(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    if folder == "trials":
        shutil.move(store.trials_dir, outside / "trials")
    (store.path / folder).symlink_to(outside / folder if folder == "trials" else outside)
    problems = check(store.path)
    assert [p.path.name for p in problems] == [folder]
    if folder == "trials":
        with pytest.raises(UserError, match="outside the results folder"):
            list(store.records())
        with pytest.raises(UserError, match="outside the results folder"):
            store.write_record(make_record("k9"))
        assert not (outside / "trials" / "k9.json").exists()
    else:
        with pytest.raises(UserError, match="outside the results folder"):
            store.inside(store.path / "checkpoints" / "k1" / "last.pt")


def test_an_experiment_folder_linked_from_outside_a_results_root_is_refused(tmp_path):
    two_records(tmp_path)
    elsewhere = Store(tmp_path / "elsewhere" / "exp2")
    elsewhere.write_record(make_record("k8"))
    (tmp_path / "results" / "exp2").symlink_to(elsewhere.path)
    with pytest.raises(UserError, match="exp2: the experiment folder is a symlink"):
        load(tmp_path / "results")
    (problem,) = check(tmp_path / "results")
    assert problem.path == tmp_path / "results" / "exp2"
    move_aside([problem])
    assert elsewhere.has("k8") and len(load(tmp_path / "results")) == 2
    with pytest.raises(UserError, match="outside"):
        experiment_dir("exp2", tmp_path / "results" / "quarantine")


def test_a_link_that_stays_inside_the_results_root_is_allowed(tmp_path):
    store = two_records(tmp_path)
    other = Store(tmp_path / "results" / "other")
    other.write_record(make_record("k7"))
    (store.trials_dir / "k7.json").symlink_to(other.record_path("k7"))
    assert check(tmp_path / "results") == []
    assert store.has("k7")


@pytest.mark.parametrize("name", ["exp\n", "exp\r", "\nexp", "ex\np", "exp\x00"])
def test_experiment_names_with_control_characters_are_refused(tmp_path, name):
    with pytest.raises(UserError, match="invalid experiment name"):
        experiment_dir(name, tmp_path)


def test_an_over_long_experiment_name_is_refused_with_a_bounded_message(tmp_path):
    experiment_dir("x" * 255, tmp_path)
    with pytest.raises(UserError, match="256 bytes long, the limit is 255") as error:
        experiment_dir("x" * 256, tmp_path)
    assert len(str(error.value)) < 250
    with pytest.raises(UserError, match="more characters") as error:
        experiment_dir("/" * 10**6, tmp_path)
    assert len(str(error.value)) < 300


def test_trial_keys_with_a_trailing_newline_are_refused(tmp_path):
    with pytest.raises(UserError, match="invalid trial key"):
        Store(tmp_path / "exp").record_path("k1\n")


def test_an_unchanged_manifest_is_not_rewritten(tmp_path):
    store = two_records(tmp_path)
    path = store.path / "manifest.json"
    before = path.stat().st_mtime_ns, path.stat().st_ino
    store.write_manifest({"kind": "suite"})
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    store.write_manifest({"kind": "suite", "seeds": [0]})
    assert store.read_manifest()["seeds"] == [0]


def test_a_file_where_the_results_folder_should_be_is_one_clear_error(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    store = Store(tmp_path / "results" / "exp")
    with pytest.raises(StoreWriteError, match=r"cannot write to .*results/exp/trials: "):
        store.write_record(make_record("k1"))


# Real full and read-only file systems: a private mount namespace (unshare -m) with a tiny tmpfs
# and a read-only bind mount. Needs CAP_SYS_ADMIN (root in this container); skipped otherwise.
def _mount_namespace() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"cannot mount in a private namespace: {probe.stderr}"


NO_MOUNTS = _mount_namespace()
needs_mounts = pytest.mark.skipif(NO_MOUNTS is not None, reason=str(NO_MOUNTS))


def _in_namespace(script: str, setup: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run python ``script`` after shell ``setup`` (mounts) in a private mount namespace."""
    (cwd / "script.py").write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(["unshare", "-m", "sh", "-c", f"{setup} && {sys.executable} script.py"],
                          cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          check=False)


@needs_mounts
def test_disk_full_is_one_clear_error_and_leaves_no_temp_file(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    result = _in_namespace(f"""
        import os
        from pathlib import Path
        from resbench.errors import UserError
        from resbench.store import Store
        from tests.store.test_store import make_record
        store = Store({str(full / 'exp')!r})
        store.write_record(make_record("k1"))
        record = make_record("k2")
        record.reason = "x" * 200_000  # larger than what is left on the 64 KiB disk
        try:
            store.write_record(record)
        except UserError as e:
            print("ERROR", e)
        print("FILES", sorted(os.listdir(store.trials_dir)))
        """, f"mount -t tmpfs -o size=64k tmpfs {full}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"ERROR cannot write to {full / 'exp' / 'trials'}: No space left on device; " \
           "free some space" in result.stdout
    assert "FILES ['k1.json']" in result.stdout  # no partial *.tmp left behind


@needs_mounts
def test_a_finished_suite_is_re_read_from_a_read_only_folder(tmp_path):
    store = two_records(tmp_path)
    before = {p: p.read_bytes() for p in store.path.rglob("*") if p.is_file()}
    result = _in_namespace(f"""
        from resbench.errors import UserError
        from resbench.store import Store, load
        from tests.store.test_store import make_record
        store = Store({str(store.path)!r})
        store.write_manifest({{"kind": "suite"}})  # unchanged: nothing to write
        print("HAS", store.has("k1"), store.has("k2"))
        print("ROWS", len(load(store.path)))
        try:
            store.write_record(make_record("k3"))
        except UserError as e:
            print("ERROR", e)
        """, f"mount --bind -o ro {tmp_path / 'results'} {tmp_path / 'results'}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "HAS True True" in result.stdout and "ROWS 2" in result.stdout
    assert f"ERROR cannot write to {store.trials_dir}: Read-only file system; choose a " \
           "writable --results folder" in result.stdout
    assert {p: p.read_bytes() for p in store.path.rglob("*") if p.is_file()} == before
