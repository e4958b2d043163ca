"""The whole report from results folders: sections, files, embedded figures, what is missing."""
from __future__ import annotations

import argparse
import base64
import re
import subprocess
import sys

import pandas as pd
from PIL import Image

from resbench.report import make_report
from resbench.report.sections import FigureRef, Missing, Table
from resbench.store import Metrics, SearchInfo
from tests.report.fixtures import make_record, make_spec, search_manifest, write_suite

SECTIONS = ["overview", "leaderboard", "status", "curves", "degradation", "gradient_flow",
            "pareto", "lesion", "signal", "shatter", "landscape", "edf", "search", "ablations"]
ANALYSES = {"lesion", "signal", "shatter", "landscape"}
"""Sections of the trial analyses: these hand-made records hold none (tests/report/test_analyses.py
fills them from a real suite), so they must say how to get them."""


def test_every_section_present_with_content(report):
    assert [s.id for s in report.sections] == SECTIONS
    for section in report.sections:
        if section.id in ANALYSES:
            assert f"--analyses {section.id}" in section.unavailable
            continue
        assert section.unavailable is None, (section.id, section.unavailable)
        assert any(isinstance(b, (Table, FigureRef)) for b in section.blocks), section.id
    md = report.markdown.read_text()
    html = report.html.read_text()
    for section in report.sections:
        assert f"## {section.title}\n" in md
        assert f'<section id="{section.id}">' in html


def test_files_written(report):
    for path in (report.markdown, report.html, report.leaderboard_csv, report.ablations_csv):
        assert path.is_file() and path.stat().st_size > 0
    names = sorted(p.name for p in report.figures)
    assert names == sorted(["training_curves.png", "degradation.png", "gradient_flow.png",
                            "pareto_macs.png", "edf_space.png", "history_space.png",
                            "importances_space.png"])


def test_figures_are_real_pngs_with_titles_and_captions(report):
    for section in report.sections:
        for block in section.blocks:
            if isinstance(block, FigureRef):
                with Image.open(block.path) as image:
                    assert image.format == "PNG"
                    assert image.size[0] >= 600 and image.size[1] >= 300
                    image.verify()
                assert block.title and block.caption.endswith(".")
                assert "\n" not in block.caption


def test_html_is_self_contained_and_embeds_every_figure(report):
    html = report.html.read_text()
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", html)
    assert "url(" not in html and "@import" not in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == len(report.figures)
    for path in report.figures:
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in sources


def test_leaderboard_keeps_its_first_and_sorted_by_columns_in_view_when_scrolled(report):
    """A wide leaderboard scrolls sideways in its box on a narrow (800 px) window; the spec
    column is pinned left and the column it is sorted by pinned right."""
    html = report.html.read_text()
    board = html[html.index('<section id="leaderboard">'):]
    board = board[:board.index("</table>")]
    header = re.findall(r"<th([^>]*)>([^<]*)</th>", board)
    sorted_cols = [i for i, (attrs, _) in enumerate(header) if 'class="sorted"' in attrs]
    assert [header[i][1] for i in sorted_cols] == ["best val acc (%)"]
    assert 'aria-sort="descending"' in header[sorted_cols[0]][0]
    for row in re.findall(r"<tr>(<td.*?)</tr>", board):
        cells = re.findall(r"<td([^>]*)>", row)
        assert [i for i, a in enumerate(cells) if 'class="sorted"' in a] == sorted_cols
    css = html[html.index("<style>"):html.index("</style>")]
    assert ".table-wrap { overflow-x: auto;" in css
    assert "td:first-child, th:first-child { position: sticky; left: 0;" in css
    assert "th.sorted, td.sorted { position: sticky; right: 0;" in css


def test_markdown_links_every_figure_with_caption(report):
    md = report.markdown.read_text()
    for i, path in enumerate(report.figures, start=1):
        assert f"](figures/{path.name})" in md
        assert f"*Figure {i}. " in md


def test_unfinished_trials_shown_as_their_own_classes(report, results):
    from resbench.store import load

    trials = load([results / "degradation", results / "space"])
    status = next(s for s in report.sections if s.id == "status")
    counts, unfinished = [b.frame for b in status.blocks if isinstance(b, Table)]
    for _, row in counts.iterrows():
        these = trials[trials["experiment"] == row["experiment"]]
        for name in ("completed", "diverged", "failed", "pruned", "infeasible"):
            assert int(row[name]) == int((these["status"] == name).sum())
    assert sorted(unfinished["status"]) == ["diverged", "failed", "failed", "pruned"]
    assert "RuntimeError: out of memory" in set(unfinished["reason"])
    md = report.markdown.read_text()
    assert "non-finite training loss at epoch 3" in md
    board = pd.read_csv(report.leaderboard_csv)
    proj = board[board["spec_name"] == "resnet20-proj"].iloc[0]
    assert proj["status"] == "completed 1, failed 1"
    plain20 = board[(board["spec_name"] == "plain20") & (board["experiment"] == "degradation")]
    assert plain20.iloc[0]["status"] == "completed 2, diverged 1"


def test_sections_without_data_say_why(tmp_path):
    """A residual-only suite: no plain nets, no search, no population — each says so."""
    from resbench.store import Store

    store = Store(tmp_path / "results" / "residual")
    for depth in (8, 14):
        for seed in (0, 1):
            store.write_record(make_record("residual", make_spec(f"r{depth}", "zero_pad", depth),
                                           seed, grad_flow=False))
    store.write_manifest({"kind": "suite"})
    result = make_report([store.path], tmp_path / "out")
    by_id = {s.id: s for s in result.sections}
    assert [s.id for s in result.sections] == SECTIONS
    assert "no completed plain network" in by_id["degradation"].unavailable
    assert "gradient norms" in by_id["gradient_flow"].unavailable
    assert "no results folder is a population" in by_id["edf"].unavailable
    assert "no results folder holds a search" in by_id["search"].unavailable
    assert by_id["curves"].unavailable is None and by_id["pareto"].unavailable is None
    md = result.markdown.read_text()
    html = result.html.read_text()
    for section_id in ("degradation", "gradient_flow", "edf", "search"):
        text = f"Not available because {by_id[section_id].unavailable}."
        assert f"_{text}_" in md
        assert text in html.replace("&#x27;", "'")


def test_suite_whose_trials_all_failed(tmp_path):
    """An early crash: no trial has any accuracy, yet every trial and section is accounted for."""
    from resbench.store import Store

    store = Store(tmp_path / "crashed")
    for depth in (8, 14):
        record = make_record("crashed", make_spec(f"p{depth}", "none", depth), 0, status="failed",
                             reason="ImportError: no module named foo")
        record.metrics = Metrics()
        store.write_record(record)
    store.write_manifest({"kind": "suite"})
    result = make_report([store.path], tmp_path / "out")
    by_id = {s.id: s for s in result.sections}
    assert [s.id for s in result.sections] == SECTIONS
    board = pd.read_csv(result.leaderboard_csv)
    assert sorted(board["status"]) == ["failed 1", "failed 1"]
    assert board["best_val_acc_mean"].isna().all()
    for section_id in ("curves", "degradation", "gradient_flow", "pareto", "ablations"):
        assert by_id[section_id].unavailable, section_id
    assert "ImportError: no module named foo" in result.markdown.read_text()


def test_search_without_usable_study_degrades_to_a_sentence(tmp_path):
    """A Ray-style search (no study) and an Optuna one with one completed trial."""
    import optuna

    from resbench.store import Store

    ray = Store(tmp_path / "ray")
    opt = Store(tmp_path / "opt")
    opt.path.mkdir(parents=True)
    storage = f"sqlite:///{opt.path / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="opt", storage=storage, direction="maximize")
    for store, runner in ((ray, "ray"), (opt, "optuna")):
        for n, depth in enumerate((8, 14)):
            status = "completed" if n == 0 else "failed"
            record = make_record(store.name, make_spec(f"t{n}", "zero_pad", depth), 0,
                                 status=status, grad_flow=False,
                                 search=SearchInfo(runner=runner, study=store.name,
                                                   trial_number=n, params={"depth": depth}))
            store.write_record(record)
            if runner == "optuna":
                study.add_trial(optuna.trial.create_trial(
                    params={"depth": depth},
                    distributions={"depth": optuna.distributions.IntDistribution(8, 14)},
                    value=record.metrics.best_val_acc,
                    state=optuna.trial.TrialState.COMPLETE if n == 0 else
                    optuna.trial.TrialState.FAIL))
    ray.write_manifest(search_manifest("ray", "ray"))
    opt.write_manifest(search_manifest("opt", "optuna"))
    result = make_report([ray.path, opt.path], tmp_path / "out")
    search = next(s for s in result.sections if s.id == "search")
    figures = [b for b in search.blocks if isinstance(b, FigureRef)]
    missing = [b.text() for b in search.blocks if isinstance(b, Missing)]
    assert sorted(f.path.name for f in figures) == ["history_opt.png", "history_ray.png"]
    assert any("importances of ray" in m and "ray search has no Optuna study" in m
               for m in missing)
    assert any("importances of opt" in m and "1 completed trial" in m for m in missing)


def test_report_reads_without_writing_to_results(results, results_before_report, report):
    after = {p: p.stat().st_mtime_ns for p in results.rglob("*")}
    assert after == results_before_report


def test_partial_results_without_manifest(tmp_path):
    """An interrupted suite: records exist, the manifest was never written."""
    folder = write_suite(tmp_path)
    (folder / "manifest.json").unlink()
    result = make_report([folder], tmp_path / "out")
    overview = next(s for s in result.sections if s.id == "overview")
    table = next(b.frame for b in overview.blocks if isinstance(b, Table))
    assert table.iloc[0]["kind"] == "unknown" and table.iloc[0]["trials"] == "15"


def test_rewriting_a_report_removes_figures_it_no_longer_draws(results, tmp_path):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "pareto_params.png").write_bytes(b"old")
    (out / "figures" / "my_notes.png").write_bytes(b"mine")
    result = make_report([results / "degradation"], out)
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == sorted(
        [p.name for p in result.figures] + ["my_notes.png"])


def test_cli_writes_report_with_options(results, tmp_path, capsys):
    from resbench.report import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([str(results / "degradation"), "-o", str(tmp_path / "out"),
                              "--group-by", "depth", "--pareto-x", "params"])
    assert cli.run(args) == 0
    assert (tmp_path / "out" / "figures" / "pareto_params.png").is_file()
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Training curves by depth" in md
    assert "report.html" in capsys.readouterr().out


def test_import_is_light():
    heavy = ("matplotlib", "optuna", "torch", "ray", "pandas")
    code = ("import sys, resbench.report, resbench.report.cli; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
