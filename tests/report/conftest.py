"""Results folders and one full report, built once per test session for the report tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.fixtures import write_search, write_suite


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    """A results root holding the ``degradation`` suite and the ``space`` Optuna search."""
    root = tmp_path_factory.mktemp("results")
    write_suite(root)
    write_search(root)
    return root


@pytest.fixture(scope="session")
def results_before_report(results) -> dict[Path, int]:
    """Every file under the results root with its modification time, before any report."""
    return {p: p.stat().st_mtime_ns for p in results.rglob("*")}


@pytest.fixture(scope="session")
def report(results, results_before_report, tmp_path_factory):
    """The report comparing both folders."""
    from resbench.report import make_report

    return make_report([results / "degradation", results / "space"],
                       tmp_path_factory.mktemp("report"))
