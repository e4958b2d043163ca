"""Comparison reports from results folders: report.md, self-contained report.html, PNGs, CSVs.

Reads only the results store (never re-trains), so it works on partial results: a search still
running or a suite that was interrupted. Several folders can be compared in one report.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from resbench.errors import UserError, unknown
from resbench.report import analyses, figures, sections, tables
from resbench.report.render import to_html, to_markdown
from resbench.report.sections import Experiment, Section
from resbench.store import Store, experiment_folders, load, load_curves, load_grad_flow, now_iso

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportResult", "make_report", "GROUP_BY_DEFAULTS", "PARETO_X"]

GROUP_BY_DEFAULTS = ("shortcut", "block", "depth", "width")
"""Training curves are grouped by the first of these that varies (else by spec name)."""

PARETO_X = tuple(figures.PARETO_AXES)


@dataclass
class ReportResult:
    """The files a report wrote, and its sections (to inspect what is in it)."""

    out_dir: Path
    markdown: Path
    html: Path
    leaderboard_csv: Path
    ablations_csv: Path
    figures: list[Path] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


def make_report(results_dirs: str | Path | Iterable[str | Path], out_dir: str | Path, *,
                group_by: str | None = None, pareto_x: str = "macs") -> ReportResult:
    """Write the comparison report of ``results_dirs`` into ``out_dir``.

    ``group_by`` names the trial column that colours the training curves and the Pareto
    points (default: the first of shortcut, block, depth, width that varies); ``pareto_x`` is
    the cost axis of the Pareto front: macs, params or latency.
    """
    if pareto_x not in PARETO_X:
        raise unknown("axis", pareto_x, PARETO_X, path="--pareto-x")
    folders = experiment_folders(results_dirs)
    trials = tables.prepare(load(folders))
    curves = load_curves(folders)
    grad = load_grad_flow(folders)
    group_by = _group_by(trials, group_by)
    experiments = [_experiment(Store(f), trials) for f in folders]

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {out} exists and is not a folder")
    figure_dir = out / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)

    several = trials["experiment"].nunique() > 1
    board = tables.leaderboard(trials)
    pairs = tables.paired_ablations(trials)
    parts = [
        sections.overview(experiments, trials),
        sections.leaderboard(board, several),
        sections.status(trials),
        _figure_section("curves", "Training curves", figure_dir,
                        figures.training_curves, trials, curves, group_by),
        sections.degradation(experiments, trials, figure_dir),
        _figure_section("gradient_flow", "Gradient flow", figure_dir,
                        figures.gradient_flow, trials, grad),
        _figure_section("pareto", "Pareto front", figure_dir,
                        figures.pareto, trials, pareto_x, group_by),
        *analyses.analysis_sections(folders, figure_dir),
        sections.populations(experiments, trials, figure_dir),
        sections.searches(experiments, trials, figure_dir),
        sections.ablations(pairs, several),
    ]

    title = "resbench report: " + ", ".join(e.name for e in experiments)
    meta = (f"Generated {now_iso()} from {len(trials)} trial records in "
            + ", ".join(str(e.folder) for e in experiments) + ".")
    result = ReportResult(out, out / "report.md", out / "report.html", out / "leaderboard.csv",
                          out / "ablations.csv", sections=parts)
    board.to_csv(result.leaderboard_csv, index=False)
    pairs.to_csv(result.ablations_csv, index=False)
    result.markdown.write_text(to_markdown(title, meta, parts, out), encoding="utf-8")
    result.html.write_text(to_html(title, meta, parts), encoding="utf-8")
    result.figures = [b.path for s in parts for b in s.blocks
                      if isinstance(b, sections.FigureRef)]
    _remove_stale_figures(figure_dir, result.figures)
    return result


FIGURE_PREFIXES = ("training_curves", "degradation", "gradient_flow", "pareto_", "edf",
                   "history_", "importances_", *analyses.PREFIXES)


def _remove_stale_figures(figure_dir: Path, written: list[Path]) -> None:
    """Delete figures an earlier report left in ``figure_dir`` that this one did not redraw,
    so the folder never shows a figure of data that is no longer in the report."""
    for path in figure_dir.glob("*.png"):
        if path not in written and path.name.startswith(FIGURE_PREFIXES):
            path.unlink()


def _figure_section(id_: str, title: str, figure_dir: Path,
                    build: Callable[..., figures.Plot], *args: object) -> Section:
    """A section holding one figure, or the reason it could not be drawn."""
    section = Section(id_, title)
    section.add_plot(build, figure_dir, *args)
    return section.finish()


def _group_by(trials: pd.DataFrame, group_by: str | None) -> str:
    """The grouping column: checked against the trial table, or the default."""
    if group_by is None:
        for name in GROUP_BY_DEFAULTS:
            if name in trials and trials[name].nunique() > 1:
                return name
        return "spec_name"
    if group_by not in trials.columns:
        allowed = [c for c in trials.columns if c not in ("key", "reason", "started_at",
                                                          "finished_at")]
        raise unknown("column of the results", group_by, allowed, path="--group-by")
    if trials[group_by].map(lambda v: isinstance(v, dict)).any():
        raise UserError(f"--group-by {group_by!r}: its values are mappings, not categories; "
                        f"group by one of its fields instead")
    return group_by


def _experiment(store: Store, trials: pd.DataFrame) -> Experiment:
    """A results folder with its manifest (empty while a run has not written one yet)."""
    manifest = store.read_manifest() if (store.path / "manifest.json").is_file() else {}
    name = str(manifest.get("name", store.name))
    if name not in set(trials["experiment"]):
        name = store.name
    return Experiment(name, store.path, manifest)
