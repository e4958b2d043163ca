"""The spec library by name (as timm's registry): ``load_spec("resnet50")``, ``resbench show
resnet50``, ``resbench list 'resnet*'``, ``resbench bench degradation``; a path still works."""
from __future__ import annotations

import pytest

import resbench
from resbench.cli import main
from resbench.errors import SpecError
from resbench.spec.library import library_files, library_root, list_names, resolve
from tests.conftest import SPECS


def test_a_short_name_a_library_path_and_a_file_path_load_the_same_spec():
    by_file = resbench.load_spec(SPECS / "cifar" / "resnet56.yaml")
    assert resbench.load_spec("resnet56").key() == by_file.key()
    assert resbench.load_spec("cifar/resnet56").key() == by_file.key()
    assert resolve(str(SPECS / "cifar" / "resnet56.yaml")) == SPECS / "cifar" / "resnet56.yaml"


def test_build_and_cost_take_a_name():
    model = resbench.build("resnet20")
    assert sum(p.numel() for p in model.parameters()) == resbench.cost("resnet20").params == 269722


def test_the_library_is_the_package_folder_and_the_repository_links_to_it():
    assert library_root() == (SPECS).resolve()
    assert (library_root().parent / "__init__.py").is_file()


def test_kinds_are_kept_apart():
    assert "suites/degradation" in library_files("suite")
    assert "suites/degradation" not in library_files("spec")
    spaces = set(library_files("space"))
    assert {"spaces/cifar_small", "spaces/conditional", "spaces/multi_objective"} <= spaces
    assert all(name.startswith("spaces/") for name in spaces)
    assert not spaces & set(library_files("spec"))
    assert resolve("degradation", ("suite", "spec")).name == "degradation.yaml"
    with pytest.raises(SpecError, match="unknown spec 'degradation'"):
        resolve("degradation")  # a suite is not a spec


def test_list_names_globs_short_names_or_library_paths():
    assert list_names("resnet5?") == ["cifar/resnet56", "torchvision/resnet50"]
    assert list_names("cifar/plain2*") == ["cifar/plain20"]
    assert list_names("nothing*") == []


def test_an_unknown_name_suggests_the_closest():
    with pytest.raises(SpecError) as err:
        resbench.load_spec("resnt50")
    assert "unknown spec 'resnt50'" in str(err.value)
    assert err.value.suggestion == "resnet50"
    assert "resnet18" in err.value.allowed


def test_a_missing_path_is_still_file_not_found():
    with pytest.raises(SpecError, match="file not found"):
        resbench.load_spec("no/such/spec.yaml")


def test_cli_show_and_list_by_name(capsys):
    assert main(["show", "resnet50"]) == 0
    assert "25,557,032" in capsys.readouterr().out
    assert main(["list", "resnet5?"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["name", "family", "params", "MACs", "input"]
    row = next(line for line in out if line.startswith("resnet50 "))
    assert row.split()[:5] == ["resnet50", "torchvision", "25.56M", "4.09G", "3x224x224"]
    assert "bottlenecks 3-4-6-3" in row
    assert len(out) == 3


def test_cli_unknown_names_exit_2_with_did_you_mean(capsys):
    assert main(["bench", "degradaton"]) == 2
    assert "did you mean 'degradation'?" in capsys.readouterr().err
    assert main(["search", "cifar_smal"]) == 2
    assert "did you mean 'cifar_small'?" in capsys.readouterr().err
    assert main(["list", "resnt*"]) == 2
    assert "error: unknown library spec" in capsys.readouterr().err


def test_python_dash_m_resbench_and_help_say_where_results_go():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "resbench", "--help"], capture_output=True,
                         text=True)
    assert out.returncode == 0
    assert "./results/<experiment>/" in " ".join(out.stdout.split())
