"""Bad results folders and bad options give a clear UserError, never a traceback-worthy crash."""
from __future__ import annotations

import shutil

import pytest

from resbench.errors import UserError
from resbench.report import make_report


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no experiment here"):
        make_report([tmp_path / "empty"], tmp_path / "out")


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="results folder not found"):
        make_report([tmp_path / "nope"], tmp_path / "out")


def test_experiment_without_records(tmp_path):
    (tmp_path / "exp" / "trials").mkdir(parents=True)
    with pytest.raises(UserError, match="no trial records"):
        make_report([tmp_path / "exp"], tmp_path / "out")


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ('{"key": "x"}', "missing required keys"),
    ('{"key": "x", "experiment": "e", "spec_name": "s", "spec_key": "k", "seed": 0,'
     ' "status": "exploded"}', "status 'exploded'"),
])
def test_corrupt_record_names_the_file(results, tmp_path, text, message):
    folder = tmp_path / "degradation"
    shutil.copytree(results / "degradation", folder)
    bad = folder / "trials" / "zz-corrupt.json"
    bad.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        make_report([folder], tmp_path / "out")
    assert str(bad) in str(info.value)
    assert not (tmp_path / "out" / "report.html").exists()


def test_unknown_group_by_suggests_a_column(results, tmp_path):
    with pytest.raises(UserError, match="did you mean 'shortcut'") as info:
        make_report([results / "degradation"], tmp_path / "out", group_by="shortcat")
    assert "allowed:" in str(info.value) and "depth" in str(info.value)


def test_unknown_pareto_axis(results, tmp_path):
    with pytest.raises(UserError, match="macs, params, latency"):
        make_report([results / "degradation"], tmp_path / "out", pareto_x="flops")


def test_output_path_is_a_file(results, tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(UserError, match="is not a folder"):
        make_report([results / "degradation"], tmp_path / "out")
