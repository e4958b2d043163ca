"""Report sections of the analyses, from a real tiny suite that ran all four: a figure each,
captions whose numbers are computed from the records, and a reason when no trial ran one."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from resbench.report import make_report
from resbench.report.analyses import analysed_series, local_minima
from resbench.store import Store
from resbench.train import run_suite
from resbench.train.suite import load_suite

SPEC = {"stem": {"kind": "cifar", "width": 4},
        "stages": [{"depth": 2, "width": 4, "stride": 1}, {"depth": 1, "width": 8, "stride": 2}]}
RECIPE = {"epochs": 2, "batch_size": 32, "device": "cpu", "latency_batch": 8,
          "data": {"name": "synthetic", "image_size": 8, "options": {"count": 96, "num_classes": 4}},
          "analyses": ["lesion", "signal", "shatter", {"landscape": {"points": 5, "grid": 5}}]}
IDS = ("lesion", "signal", "shatter", "landscape")


def _run(tmp: Path, recipe: dict) -> Path:
    specs = []
    for name, shortcut in (("res", "zero_pad"), ("plain", "none")):
        path = tmp / "specs" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({**SPEC, "shortcut": shortcut}))
        specs.append(str(path))
    suite = tmp / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "claims", "specs": specs, "seeds": [0],
                                     "recipe": recipe}))
    run_suite(load_suite(suite), results_root=tmp / "results", progress="none")
    return tmp / "results" / "claims"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("claims"), RECIPE)


def test_every_analysis_has_a_figure_and_a_caption_with_measured_numbers(analysed, tmp_path):
    result = make_report([analysed], tmp_path / "report")
    sections = {s.id: s for s in result.sections}
    for id_ in IDS:
        section = sections[id_]
        assert section.unavailable is None, id_
        (figure,) = section.blocks
        assert figure.path.is_file() and figure.path.stat().st_size > 1000
        assert "found" in figure.caption and "Here" in figure.caption
    # The lesion caption's numbers are the records' own.
    records = {r.spec_name: r for r in Store(analysed).records()}
    for text, name in (("{} points on average in residual nets (1 spec)", "res"),
                       ("by {} points in plain nets (1 spec)", "plain")):
        lesion = records[name].analyses.lesion
        intact = 100 * (1 - lesion.val_acc)
        rises = [100 * (1 - b.val_acc) - intact for b in lesion.blocks
                 if not b.downsample and b.val_acc is not None]
        assert text.format(f"{sum(rises) / len(rises):.1f}") in sections["lesion"].blocks[0].caption
    # So is the variance growth of signal propagation.
    rows = records["res"].analyses.signal.rows
    growth = rows[-1].channel_variance / rows[0].channel_variance
    assert f"{growth:.2f}x that at the first in residual nets" in sections["signal"].blocks[0].caption
    assert re.search(r"monotone in \d of 2 trials", sections["landscape"].blocks[0].caption)
    markdown = result.markdown.read_text()
    assert "## Lesion study (Veit et al. 2016)" in markdown and "figures/lesion.png" in markdown


def test_without_analyses_each_section_says_how_to_get_them(tmp_path):
    folder = _run(tmp_path, {**RECIPE, "epochs": 1, "analyses": []})
    sections = {s.id: s for s in make_report([folder], tmp_path / "report").sections}
    for id_ in IDS:
        assert f"--analyses {id_}" in sections[id_].unavailable


def test_series_pool_seeds_per_spec_plain_first(analysed):
    series = analysed_series([analysed], "lesion")
    assert [(s.spec_name, s.plain, len(s.records)) for s in series] == [
        ("plain", True, 1), ("res", False, 1)]
    assert analysed_series([analysed], "signal")[0].depth > 0


def test_local_minima_count_a_bowl_once_and_a_rugged_grid_more():
    bowl = [[(i - 2) ** 2 + (j - 2) ** 2 for j in range(5)] for i in range(5)]
    assert local_minima(bowl) == 1
    rugged = [[1.0, 2.0, 1.0], [2.0, 3.0, 2.0], [1.0, 2.0, 0.5]]
    assert local_minima(rugged) == 4
    assert local_minima([[math.nan, 1.0], [2.0, 3.0]]) == 1


def test_architectures_sharing_a_name_stay_apart(analysed, tmp_path):
    """A search names every trial after its space: series split by spec key, tagged by it."""
    from resbench.store import Store

    store = Store(tmp_path / "search")
    for record in Store(analysed).records():
        record.spec_name = "space"
        store.write_record(record)
    series = analysed_series([store.path], "signal")
    assert len(series) == 2 and len({s.name for s in series}) == 2
    assert all(s.name.startswith("space ") and s.spec_key.startswith(s.tag) for s in series)
