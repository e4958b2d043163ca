"""The report's content: sections of paragraphs, tables and figures, built from the store.

Every section always appears; one without data says why in a sentence (``unavailable``).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resbench.report import figures, tables
from resbench.report.tables import NotAvailable

if TYPE_CHECKING:
    import pandas as pd

POPULATION_MIN_SPECS = 20
"""A suite with at least this many distinct specs is treated as a sampled design space."""

LEADERBOARD_ROWS = 40
"""Rows shown in the report; the CSV has them all."""


@dataclass
class Table:
    """A formatted table (strings only) with a caption."""

    frame: pd.DataFrame
    caption: str
    sorted_by: str | None = None  # the column the rows are sorted by (kept in view in HTML)


@dataclass
class FigureRef:
    """A saved PNG with the title and one-line caption printed beside it."""

    path: Path
    title: str
    caption: str


@dataclass
class Missing:
    """A figure or table that could not be made, and why (one sentence)."""

    reason: str
    label: str | None = None

    def text(self) -> str:
        where = f" for {self.label}" if self.label else ""
        return f"Not available{where} because {self.reason}."


@dataclass
class Section:
    """One report section; ``unavailable`` is the reason it has no content, if it has none."""

    id: str
    title: str
    blocks: list[str | Table | FigureRef | Missing] = field(default_factory=list)
    unavailable: str | None = None

    def add_plot(self, build: Callable[..., figures.Plot], figure_dir: Path, *args: Any,
                 label: str | None = None) -> None:
        """Build and save a figure, or record why it cannot be drawn."""
        try:
            plot = build(*args)
        except NotAvailable as e:
            self.blocks.append(Missing(str(e), label))
            return
        if label:
            plot.name = f"{plot.name}_{figures.slug(label)}"
            plot.title = f"{plot.title} ({label})"
        path = figures.save(plot, figure_dir)
        plot.figure.clear()
        self.blocks.append(FigureRef(path, plot.title, plot.caption))

    def finish(self) -> Section:
        """A section with no figure or table is marked unavailable as a whole, with the reasons."""
        if not any(isinstance(b, (Table, FigureRef)) for b in self.blocks):
            reasons = [f"{b.label}: {b.reason}" if b.label else b.reason
                       for b in self.blocks if isinstance(b, Missing)]
            self.unavailable = "; ".join(reasons) or "there is no data for it"
            self.blocks = []
        return self


@dataclass
class Experiment:
    """One results folder: its name, manifest (empty if none was written yet) and folder."""

    name: str
    folder: Path
    manifest: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", "unknown"))

    @property
    def search(self) -> dict[str, Any]:
        """The manifest's ``search`` entry (runner, objectives, study...), empty for a suite."""
        entry = self.manifest.get("search")
        return entry if isinstance(entry, dict) else {}

    @property
    def population(self) -> dict[str, Any]:
        """The manifest's ``population`` entry (how ``resbench sample`` drew a suite), or {}."""
        entry = self.manifest.get("population")
        return entry if isinstance(entry, dict) else {}

    @property
    def objectives(self) -> list[str]:
        """The search's objective names, first the one histories and importances follow."""
        return [str(o) for o in self.search.get("objectives") or []]

    @property
    def study_name(self) -> str:
        return str(self.search.get("study") or self.name)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: empty for missing, large or whole numbers without decimals."""
    if value is None or (isinstance(value, Real) and math.isnan(value)):
        return ""
    if isinstance(value, bool) or not isinstance(value, Real):
        return str(value)
    if isinstance(value, Integral) or abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{float(value):.{digits}g}"


def fmt_mean_std(mean: Any, std: Any, scale: float = 1.0, digits: int = 2) -> str:
    """``93.12 ± 0.41`` (std only when several seeds gave one)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return ""
    text = f"{mean * scale:.{digits}f}"
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std * scale:.{digits}f}"
    return text


def overview(experiments: list[Experiment], trials: pd.DataFrame) -> Section:
    """Which results were read: experiment, kind, folder, trial counts by status."""
    import pandas as pd

    section = Section("overview", "Overview")
    rows = []
    for exp in experiments:
        these = trials[trials["experiment"] == exp.name]
        rows.append({"experiment": exp.name, "kind": exp.kind, "folder": str(exp.folder),
                     "trials": str(len(these)),
                     "status": tables.status_summary(these["status"]) if len(these) else "",
                     "created": str(exp.manifest.get("created", ""))})
    section.blocks.append(
        f"{len(trials)} trials of {trials['spec_key'].nunique()} distinct architectures from "
        f"{len(experiments)} results folder(s). Read from the results store only: nothing was "
        "re-trained, and results still being written are shown as they stand.")
    section.blocks.append(Table(pd.DataFrame(rows), "Results folders in this report."))
    return section


def _millions(value: Any) -> str:
    return fmt_num(None if value is None or value != value else value / 1e6)


LEADERBOARD_CELLS: dict[str, Callable[[Any], str]] = {
    "experiment": lambda r: str(r["experiment"]),
    "spec": lambda r: str(r["name"]),
    "recipe": lambda r: str(r["recipe_variant"]),
    "block": lambda r: r["block"],
    "shortcut": lambda r: r["shortcut"],
    "depth": lambda r: fmt_num(r["depth"]),
    "width": lambda r: fmt_num(r["width"]),
    "seeds": lambda r: str(r["seeds"]),
    "params (M)": lambda r: _millions(r["params"]),
    "MACs (M)": lambda r: _millions(r["macs"]),
    "latency b1 (ms)": lambda r: fmt_num(r["latency_ms_b1"]),
    "throughput (img/s)": lambda r: fmt_num(r["images_per_s"]),
    "best val acc (%)": lambda r: fmt_mean_std(r["best_val_acc_mean"], r["best_val_acc_std"], 100),
    "final val acc (%)": lambda r: fmt_mean_std(r["final_val_acc_mean"], r["final_val_acc_std"],
                                                100),
    "final train loss": lambda r: fmt_mean_std(r["final_train_loss_mean"],
                                               r["final_train_loss_std"], digits=4),
    "train error (%)": lambda r: fmt_mean_std(1 - r["final_train_acc_mean"],
                                              r["final_train_acc_std"], 100),
    "epochs": lambda r: fmt_num(r["epochs"]),
    "n": lambda r: str(r["completed"]),
    "status": lambda r: r["status"],
}
"""How each leaderboard column is written, for the report and for ``resbench bench``."""

REPORT_COLUMNS = ("experiment", "spec", "recipe", "block", "shortcut", "depth", "width",
                  "params (M)", "MACs (M)", "latency b1 (ms)", "throughput (img/s)",
                  "best val acc (%)", "final val acc (%)", "final train loss", "epochs", "n",
                  "status")
"""The report's leaderboard columns (``experiment`` only for several folders, ``recipe`` only
when recipes differ between rows)."""


def leaderboard_cells(board: pd.DataFrame, columns: tuple[str, ...] = REPORT_COLUMNS, *,
                      several_experiments: bool = False) -> pd.DataFrame:
    """The leaderboard's rows as text, in its order: one formatter for every place it is shown."""
    import pandas as pd

    variants = "recipe_variant" in board and board["recipe_variant"].astype(bool).any()
    shown = [c for c in columns if (c != "experiment" or several_experiments)
             and (c != "recipe" or variants)]
    rows = [{c: LEADERBOARD_CELLS[c](r) for c in shown} for _, r in board.iterrows()]
    return pd.DataFrame(rows, columns=shown)


def leaderboard(board: pd.DataFrame, several_experiments: bool) -> Section:
    """The leaderboard table, formatted for reading (the CSV keeps the raw numbers)."""
    section = Section("leaderboard", "Leaderboard")
    cells = leaderboard_cells(board, several_experiments=several_experiments).head(LEADERBOARD_ROWS)
    shown = "" if len(board) <= LEADERBOARD_ROWS else (
        f" The top {LEADERBOARD_ROWS} of {len(board)} are shown; leaderboard.csv has all.")
    section.blocks.append(Table(cells, (
        "One row per architecture and recipe, sorted by best validation accuracy; accuracies "
        "and loss are mean ± std (sample std) over the n completed seeds, cost columns are per "
        "architecture, recipe lists the training settings that differ between rows, and "
        "status counts every trial." + shown),
        sorted_by=SORTED_BY if SORTED_BY in cells.columns else None))
    return section


SORTED_BY = "best val acc (%)"  # the leaderboard's order (tables.leaderboard)


def status(trials: pd.DataFrame) -> Section:
    """Trial outcomes: counts per status, and every unfinished trial with its reason."""
    section = Section("status", "Trial status")
    counts = tables.status_counts(trials)
    section.blocks.append(Table(counts.astype(str), (
        "Trials per experiment and outcome: pruned (stopped early by the search), diverged "
        "(non-finite loss), failed (an error), infeasible (over a budget) and completed.")))
    rest = tables.unfinished_trials(trials)
    if len(rest):
        shown = rest.map(fmt_num)
        section.blocks.append(Table(shown, "Every trial that did not complete, with its reason."))
    else:
        section.blocks.append(f"All {len(trials)} trials completed.")
    return section


def ablations(pairs: pd.DataFrame, several_experiments: bool) -> Section:
    """Paired ablations: one-field differences compared on matched seeds."""
    import pandas as pd

    section = Section("ablations", "Paired ablations")
    if not len(pairs):
        section.unavailable = ("no two completed architectures differ in exactly one field "
                               "under the same recipe with a seed in common")
        return section
    rows = []
    for _, r in pairs.head(LEADERBOARD_ROWS).iterrows():
        spec_a, spec_b = str(r["spec_a"]), str(r["spec_b"])
        if several_experiments:
            spec_a, spec_b = f"{r['experiment_a']}/{spec_a}", f"{r['experiment_b']}/{spec_b}"
        rows.append({
            "field": r["field"], "depth A": fmt_num(r["depth"]), "A": str(r["a"]),
            "B": str(r["b"]),
            "spec A": spec_a, "spec B": spec_b,
            "seeds": str(r["seeds"]),
            "val acc A (%)": fmt_mean_std(r["val_acc_a"], None, 100),
            "val acc B (%)": fmt_mean_std(r["val_acc_b"], None, 100),
            "Δ val acc B−A (pp)": fmt_mean_std(r["delta_val_acc_mean"], r["delta_val_acc_std"], 100),
            "B better": f"{r['b_wins']}/{r['seeds']}",
            "Δ train loss B−A": fmt_mean_std(r["delta_train_loss_mean"],
                                             r["delta_train_loss_std"], digits=4),
        })
    shown = "" if len(pairs) <= LEADERBOARD_ROWS else (
        f" The first {LEADERBOARD_ROWS} of {len(pairs)} pairs are shown; ablations.csv has all.")
    section.blocks.append(Table(pd.DataFrame(rows), (
        "Architectures that differ in one field, same recipe, compared seed by seed on final "
        "validation accuracy and final training loss: mean ± std of the per-seed difference "
        "B − A, and on how many seeds B was better." + shown)))
    return section


def population_of(exp: Experiment, trials: pd.DataFrame) -> pd.DataFrame | None:
    """The experiment's trials if they form a population (a search or a sampled space)."""
    these = trials[trials["experiment"] == exp.name]
    is_search = exp.kind == "search" or (
        "search.trial_number" in these and these["search.trial_number"].notna().any())
    sampled = bool(exp.population) and not these.empty
    if is_search or sampled or these["spec_key"].nunique() >= POPULATION_MIN_SPECS:
        return these
    return None


def design_choices(population: pd.DataFrame) -> list[str]:
    """Searched parameters if recorded, else the architecture fields that vary."""
    params = [c for c in population.columns if c.startswith("search.params.")
              and population[c].notna().any()]
    if params:
        return params
    return [f for f in tables.ABLATION_FIELDS if f in population]


def populations(experiments: list[Experiment], trials: pd.DataFrame,
                figure_dir: Path) -> Section:
    """EDFs per design choice for each population in the report."""
    section = Section("edf", "Design-space error distributions")
    found = [(exp, pop) for exp in experiments
             if (pop := population_of(exp, trials)) is not None]
    if not found:
        section.unavailable = (f"no results folder is a population: a search, or a suite of at "
                               f"least {POPULATION_MIN_SPECS} distinct architectures")
        return section
    for exp, pop in found:
        if exp.population:
            section.blocks.append(band_sentence(exp.name, exp.population))
        section.add_plot(figures.edf, figure_dir, pop, design_choices(pop), label=exp.name)
    return section.finish()


def band_sentence(name: str, population: dict[str, Any]) -> str:
    """What ``resbench sample`` did for a population: the space, the band(s), the draws."""
    bands = []
    for key, label in (("macs", "MACs"), ("params", "parameters")):
        band = population.get(key)
        if isinstance(band, (list, tuple)) and len(band) == 2:
            bands.append(f"{label} from {fmt_num(band[0])} to {fmt_num(band[1])}")
    size = population.get("input_size")
    at = f" at {size}x{size} pixels" if size else " at each spec's input size"
    space = Path(str(population.get("space") or "a space")).name
    return (f"{name}: {fmt_num(population.get('kept'))} models drawn uniformly from {space} "
            f"(seed {population.get('seed')}, {fmt_num(population.get('drawn'))} draws), kept "
            f"with {' and '.join(bands) or 'no band'}{at}: the error distributions compare "
            "design choices at equal cost.")


def degradation(experiments: list[Experiment], trials: pd.DataFrame, figure_dir: Path) -> Section:
    """Depth against error, plain vs residual, for each suite (searches confound depth with
    their other sampled choices, so they are left out)."""
    section = Section("degradation", "Degradation with depth (plain vs residual)")
    suites = [e for e in experiments if population_of(e, trials) is None or e.kind == "suite"]
    if not suites:
        section.unavailable = ("it compares fixed architectures across depths, and every "
                               "results folder here is a search")
        return section
    for exp in suites:
        section.add_plot(figures.degradation, figure_dir,
                         trials[trials["experiment"] == exp.name],
                         label=exp.name if len(suites) > 1 else None)
    return section.finish()


def searches(experiments: list[Experiment], trials: pd.DataFrame, figure_dir: Path) -> Section:
    """Optimisation history from the records, and Optuna parameter importances when a study exists."""
    section = Section("search", "Search: optimisation history and parameter importances")
    found = [exp for exp in experiments if exp.kind == "search" or (
        "search.trial_number" in trials and
        trials.loc[trials["experiment"] == exp.name, "search.trial_number"].notna().any())]
    if not found:
        section.unavailable = "no results folder holds a search"
        return section
    for exp in found:
        these = trials[trials["experiment"] == exp.name]
        if "search.trial_number" not in these:
            section.blocks.append(Missing("its records carry no search trial numbers",
                                          f"the optimisation history of {exp.name}"))
        else:
            try:
                metric, direction = objective_metric(exp)
            except NotAvailable as e:
                section.blocks.append(Missing(str(e), f"the optimisation history of {exp.name}"))
            else:
                section.add_plot(figures.optimisation_history, figure_dir, these, exp.name,
                                 metric, direction)
        try:
            values, evaluator, note = study_importances(exp)
        except NotAvailable as e:
            section.blocks.append(Missing(str(e), f"the parameter importances of {exp.name}"))
            continue
        section.add_plot(figures.importances, figure_dir, values, exp.name, evaluator)
        if note:
            section.blocks.append(note)
    return section.finish()


def objective_metric(exp: Experiment) -> tuple[str, str]:
    """The trial column and direction of the search's first objective (validation accuracy
    when the manifest names none), as ``resbench.search`` defines its objectives."""
    from resbench.search.objectives import OBJECTIVES

    name = exp.objectives[0] if exp.objectives else "val_acc"
    if name not in OBJECTIVES:
        raise NotAvailable(f"its objective {name!r} is not one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name].metric, OBJECTIVES[name].direction


def study_importances(exp: Experiment) -> tuple[dict[str, float], str, str]:
    """Parameter importances for the search's first objective, read from its Optuna study
    without writing to it.

    Returns (importances, what they were computed for, a note of any Optuna warning). Raises
    NotAvailable with a sentence when there is no study or too few varied completed trials.
    """
    storage = _storage_url(exp)
    import optuna

    from resbench._compat.optuna import quiet

    try:
        if "://" in storage:  # an RDB URL; else a journal file (the local runner's default)
            stored = optuna.storages.RDBStorage(storage, skip_table_creation=True)
        else:
            from optuna.storages.journal import JournalFileBackend

            stored = optuna.storages.JournalStorage(JournalFileBackend(storage))
        with quiet():
            study = optuna.load_study(study_name=exp.study_name, storage=stored)
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) < 2:
            raise NotAvailable(f"the study has {len(done)} completed trial(s); importances "
                               "need at least two")
        varied = {k for t in done for k, v in t.params.items()
                  if any(u.params.get(k) != v for u in done)}
        if not varied:
            raise NotAvailable("no parameter takes two values among the completed trials")
        target = None
        if len(study.directions) > 1:  # PED-ANOVA rewards low targets: negate a maximised one
            sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
            target = lambda t: sign * t.values[0]  # noqa: E731
        with warnings.catch_warnings(record=True) as caught, quiet():
            warnings.simplefilter("always")
            values = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), target=target)
    except NotAvailable:
        raise
    except Exception as e:  # noqa: BLE001 - any Optuna/SQL failure becomes a sentence, not a crash
        raise NotAvailable(f"Optuna could not compute them ({type(e).__name__}: {e})") from None
    notes = [str(w.message) for w in caught if "to achieve low `target`" not in str(w.message)]
    objective = exp.objectives[0] if exp.objectives else "the objective"
    return ({k: float(v) for k, v in values.items()},
            f"PED-ANOVA evaluator, for {objective}",
            f"Optuna warned: {' '.join(notes)}" if notes else "")


def _storage_url(exp: Experiment) -> str:
    """The study's storage: the manifest's URL (or journal file) if it records one, else the
    folder's study.db (experiments of earlier versions) or study.journal."""
    url = exp.search.get("storage")
    if url:
        return str(url)
    journal = exp.folder / "study.journal"
    if journal.is_file() and not (exp.folder / "study.db").is_file():
        return str(journal.resolve())
    local = exp.folder / "study.db"
    if not local.is_file():
        runner = exp.search.get("runner")
        raise NotAvailable(f"this {runner + ' ' if runner else ''}search has no Optuna study "
                           f"({local} does not exist)")
    return f"sqlite:///{local.resolve()}"
