"""Report figures: one function per figure, each returning a titled, captioned matplotlib Figure.

Every function takes the trial table as ``tables.prepare`` returns it. Figures are built on
``matplotlib.figure.Figure`` directly (no pyplot, no global backend), so
building many reports in one process leaks nothing. A function raises ``NotAvailable`` with a
one-sentence reason when its data is missing.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resbench.report.tables import STATUSES, NotAvailable, completed, spec_id

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "axes.spines.top": False, "axes.spines.right": False,
    "lines.linewidth": 1.6, "lines.markersize": 4, "savefig.dpi": 150,
    "figure.constrained_layout.use": True,
}

SHORTCUT_COLORS = {
    "none": "#d62728", "zero_pad": "#1f77b4", "projection": "#2ca02c",
    "full_projection": "#9467bd", "avgpool_projection": "#8c564b", "gated": "#e377c2",
    "scaled": "#17becf", "identity": "#ff7f0e", "mixed": "#7f7f7f",
}
"""A fixed colour per shortcut kind, so plain nets are red in every figure."""

STATUS_STYLES = {"pruned": "--", "diverged": ":", "failed": "-.", "infeasible": (0, (1, 3))}
STATUS_MARKERS = {"completed": "o", "pruned": "x", "diverged": "v", "failed": "X",
                  "infeasible": "s"}
STATUS_COLORS = {"completed": "#1f77b4", "pruned": "#7f7f7f", "diverged": "#ff7f0e",
                 "failed": "#d62728", "infeasible": "#9467bd"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

METRIC_AXES = {
    "best_val_acc": ("best validation accuracy", 0.01, "%"),
    "macs": ("MACs per image", 1e6, "millions"),
    "params": ("parameters", 1e6, "millions"),
    "latency_ms_b1": ("latency at batch 1", 1.0, "ms per image"),
}
"""Trial metric column → (axis name, divisor, unit after dividing)."""

PARETO_AXES = {"macs": "macs", "params": "params", "latency": "latency_ms_b1"}
"""``--pareto-x`` choice → trial metric column."""


@dataclass
class Plot:
    """A finished figure with the title and one-line caption the report prints under it."""

    name: str
    figure: Figure
    title: str
    caption: str


def styled(build: Callable[..., Plot]) -> Callable[..., Plot]:
    """Build the figure under the report's matplotlib style, without touching global state."""
    @functools.wraps(build)
    def wrapper(*args: Any, **kwargs: Any) -> Plot:
        import matplotlib
        with matplotlib.rc_context(STYLE):
            return build(*args, **kwargs)
    return wrapper


def save(plot: Plot, directory: Path) -> Path:
    """Write the figure as ``<directory>/<name>.png`` and return the path."""
    import matplotlib
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{plot.name}.png"
    with matplotlib.rc_context(STYLE):
        plot.figure.savefig(path, format="png", facecolor="white")
    return path


def _figure(ncols: int = 1, nrows: int = 1, width: float = 4.2, height: float = 3.2):
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def shortcut_label(kind: Any) -> str:
    """``plain`` for a net without shortcuts, else the shortcut kind."""
    return "plain" if kind == "none" else f"residual ({kind})"


def group_colors(values: list, field: str) -> dict:
    """A colour per group value: the fixed shortcut colours, else the palette in order."""
    if field == "shortcut":
        return {v: SHORTCUT_COLORS.get(v, PALETTE[i % len(PALETTE)]) for i, v in enumerate(values)}
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}


def group_label(value: Any, field: str) -> str:
    """How a group value is named in a legend."""
    return shortcut_label(value) if field == "shortcut" else f"{field} = {value}"


def _sorted_values(series: pd.Series) -> list:
    values = list(series.dropna().unique())
    return sorted(values, key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0,
                                         str(v)))


def _varying(df: pd.DataFrame, fields: tuple[str, ...], always: str) -> list[str]:
    """The fields among ``fields`` that take several values (``always`` is always kept)."""
    return [f for f in fields if f == always or (f in df and df[f].nunique(dropna=False) > 1)]


def _series_label(key: tuple, fields: list[str]) -> str:
    parts = []
    for field, value in zip(fields, key):
        parts.append(shortcut_label(value) if field == "shortcut" else str(value))
    return ", ".join(parts)


def _unfinished_note(df: pd.DataFrame) -> str:
    rest = df[df["status"] != "completed"]
    if not len(rest):
        return ""
    counts = rest["status"].value_counts()
    listed = ", ".join(f"{int(counts[s])} {s}" for s in STATUSES if s in counts.index)
    return f" Excluded: {listed} (see Trial status)."


def _with_trials(long: pd.DataFrame, trials: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Attach trial columns to a long per-trial table (curves, gradient flow) by trial key."""
    on = ["key"] + (["experiment"] if "experiment" in long and "experiment" in trials else [])
    keep = list(dict.fromkeys(on + [c for c in columns if c in trials]))
    extra = [c for c in long.columns if c not in keep or c in on]
    return long[extra].merge(trials[keep], on=on, how="inner")


@styled
def training_curves(trials: pd.DataFrame, curves: pd.DataFrame, group_by: str) -> Plot:
    """Training loss and validation accuracy per epoch, one line per spec, coloured by a field.

    Completed trials are averaged over seeds (solid); every unfinished trial that has curves is
    drawn on its own in its status's line style, so pruned and diverged runs stay visible.
    """
    from matplotlib.ticker import MaxNLocator
    data = _with_trials(curves, trials, ["experiment", "spec_name", "spec_key", "recipe_variant",
                                         "status", "seed", "depth", group_by])
    if not len(data):
        raise NotAvailable("no trial has per-epoch curves yet")
    values = _sorted_values(data[group_by].astype(object).where(data[group_by].notna(), "n/a"))
    data[group_by] = data[group_by].astype(object).where(data[group_by].notna(), "n/a")
    colors = group_colors(values, group_by)
    fig, (loss_ax, acc_ax) = _figure(ncols=2)
    done = data[data["status"] == "completed"]
    lines = _spec_lines(done, group_by, colors)
    for spec, color, label in lines:
        mean = spec.groupby("epoch")[["train_loss", "val_acc"]].mean()
        dot = {"marker": "o"} if len(mean) == 1 else {}  # a one-epoch run is a point, not a line
        loss_ax.plot(mean.index, mean["train_loss"], color=color, label=label, **dot)
        acc_ax.plot(mean.index, 100 * mean["val_acc"], color=color, label=label, **dot)
    rest = data[data["status"] != "completed"]
    for (_, _, value, status), trial in rest.groupby(
            ["experiment", "key", group_by, "status"], sort=False):
        trial = trial.sort_values("epoch")
        style = dict(color=colors[value], linestyle=STATUS_STYLES.get(status, "--"), alpha=0.8)
        loss_ax.plot(trial["epoch"], trial["train_loss"], **style)
        acc_ax.plot(trial["epoch"], 100 * trial["val_acc"], **style)
    losses = data["train_loss"].astype(float)
    losses = losses[(losses > 0) & losses.notna() & (losses != float("inf"))]
    log_loss = len(losses) > 0 and losses.max() / losses.min() > 20
    loss_ax.set(xlabel="epoch", ylabel="training loss (cross-entropy, nats)",
                yscale="log" if log_loss else "linear", title="Training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(acc_ax, colors, group_by, sorted(set(rest["status"])),
            [(color, label) for _, color, label in lines])
    seeds = int(done.groupby(spec_id(done))["seed"].nunique().max()) if len(done) else 0
    caption = (f"Training loss (left{', log scale' if log_loss else ''}) and validation accuracy "
               f"(right) per epoch, one "
               f"solid line per spec (mean over up to {seeds} seed(s)), coloured by {group_by}, "
               f"lighter to darker by depth within a colour")
    if len(rest):
        caption += "; unfinished trials are drawn alone, styled by status"
    return Plot("training_curves", fig, f"Training curves by {group_by}", caption + ".")


def _spec_lines(done: pd.DataFrame, group_by: str, colors: dict) -> list[tuple]:
    """``(rows, colour, label)`` per completed spec: its group's colour, lighter for shallower
    nets, labelled by spec name (``plain20``, ``resnet56``: He et al.'s Fig. 6 legend)."""
    from matplotlib.colors import to_rgb

    out = []
    for value in colors:  # the group legend's order
        group = done[done[group_by] == value]
        if not len(group):
            continue
        specs = list(group.groupby(spec_id(group), sort=False))
        specs.sort(key=lambda item: (float(item[1]["depth"].iloc[0])
                                     if "depth" in item[1] and item[1]["depth"].notna().all()
                                     else 0.0, str(item[1]["spec_name"].iloc[0])))
        several = len({str(s["spec_name"].iloc[0]) for _, s in specs}) < len(specs)
        base = to_rgb(colors[value])
        for i, (_, spec) in enumerate(specs):
            light = 0.6 * (1 - i / (len(specs) - 1)) if len(specs) > 1 else 0.0
            color = tuple(c + (1 - c) * light for c in base)
            label = str(spec["spec_name"].iloc[0])
            if several:  # the same spec in several experiments or recipes
                where = [str(spec[c].iloc[0]) for c in ("experiment", "recipe_variant")
                         if c in spec and str(spec[c].iloc[0])]
                label += f" ({', '.join(where)})"
            out.append((spec, color, label))
    return out


def _legend(ax: Axes, colors: dict, field: str, statuses: list[str],
            lines: list[tuple] | None = None) -> None:
    """A legend entry per spec line (or per group colour when there are too many lines), plus
    one per unfinished status shown."""
    from matplotlib.lines import Line2D
    if lines and len(lines) + len(statuses) <= 14:
        handles = [Line2D([], [], color=c, label=label) for c, label in lines]
    else:
        handles = [Line2D([], [], color=c, label=group_label(v, field))
                   for v, c in colors.items()]
    handles += [Line2D([], [], color="black", linestyle=STATUS_STYLES.get(s, "--"), label=s)
                for s in statuses]
    if len(handles) <= 14:
        ax.legend(handles=handles, loc="best", frameon=False)


@styled
def degradation(trials: pd.DataFrame) -> Plot:
    """Final training and validation error against depth, plain against residual nets.

    The figure of He et al. 2015 (Fig. 1 and 6) reduced to its end points: a plain net whose
    training error rises with depth shows the degradation problem; shortcuts should remove it.
    """
    done = completed(trials).dropna(subset=["depth", "final_train_acc", "final_val_acc"])
    if not (done["shortcut"] == "none").any():
        raise NotAvailable("there is no completed plain network (shortcut: none) to set against "
                           "residual ones")
    if done["depth"].nunique() < 2:
        raise NotAvailable("the completed trials cover a single depth; the figure needs two or "
                           "more")
    fields = _varying(done, ("experiment", "block", "shortcut"), always="shortcut")
    fig, (train_ax, val_ax) = _figure(ncols=2)
    linestyles = ["-", "--", ":", "-."]
    for i, (key, series) in enumerate(done.groupby(fields, sort=True)):
        key = key if isinstance(key, tuple) else (key,)
        shortcut = key[fields.index("shortcut")]
        by_depth = series.groupby("depth")
        style = dict(color=SHORTCUT_COLORS.get(shortcut, PALETTE[i % len(PALETTE)]), marker="o",
                     linestyle=linestyles[i % len(linestyles)] if len(fields) > 1 else "-",
                     label=_series_label(key, fields))
        for ax, column in ((train_ax, "final_train_acc"), (val_ax, "final_val_acc")):
            stats = by_depth[column].agg(["mean", "std"])
            error, spread = 100 * (1 - stats["mean"]), 100 * stats["std"].fillna(0)
            ax.plot(error.index, error, **style)
            ax.fill_between(error.index, error - spread, error + spread,
                            color=style["color"], alpha=0.15, linewidth=0)
    train_ax.set(xlabel="depth (weighted layers)", ylabel="final training error (%)",
                 title="Training error")
    for ax in (train_ax, val_ax):
        ax.set_xticks(sorted(done["depth"].unique()))
    val_ax.set(xlabel="depth (weighted layers)", ylabel="final validation error (%)",
               title="Validation error")
    train_ax.legend(frameon=False)
    caption = ("Final training (left) and validation (right) error against depth, mean ± std "
               "over seeds (band); degradation shows as plain-net training error rising with "
               "depth (He et al. 2015, Fig. 1 and 6)." + _unfinished_note(trials))
    return Plot("degradation", fig, "Degradation: error against depth, plain vs residual",
                caption)


@styled
def gradient_flow(trials: pd.DataFrame, grad: pd.DataFrame) -> Plot:
    """The per-block gradient norm profile of each spec, input to output, plain nets in red."""
    data = _with_trials(grad, trials, ["experiment", "spec_name", "name", "spec_key",
                                       "recipe_variant", "shortcut", "depth", "status"])
    data = data[data["grad_norm"].notna()]
    if not len(data):
        raise NotAvailable("no trial recorded per-block gradient norms (the recipe's "
                           "gradient-probe steps may be 0)")
    fig, (ax,) = _figure(width=6.0, height=3.6)
    specs = data.groupby(spec_id(data), sort=False)
    order = sorted(specs.groups, key=lambda k: (str(specs.get_group(k)["shortcut"].iloc[0]),
                                                float(specs.get_group(k)["depth"].iloc[0])))
    depths = sorted(data["depth"].dropna().unique())
    linestyles = ["-", "--", ":", "-."]
    for i, key in enumerate(order):
        spec = specs.get_group(key)
        profile = spec.groupby("index")["grad_norm"].mean()
        shortcut = spec["shortcut"].iloc[0]
        depth = spec["depth"].iloc[0]
        style = linestyles[depths.index(depth) % len(linestyles)] if depth in depths else "-"
        ax.plot(profile.index, profile.values, marker="o", markersize=2.5, linestyle=style,
                color=SHORTCUT_COLORS.get(shortcut, PALETTE[i % len(PALETTE)]),
                label=f"{spec['name'].iloc[0]} "
                      f"({'plain' if shortcut == 'none' else f'{shortcut} shortcut'})")
    ax.set(xlabel="residual block index (input → output)",
           ylabel="‖∂loss/∂block output‖₂ (log scale)", yscale="log",
           title="Gradient norm per block")
    if len(order) <= 12:
        ax.legend(frameon=False, loc="best")
    caption = ("Mean L2 norm of the loss gradient with respect to each block's output "
               "(over probe steps and seeds), from the first block (left) to the last; plain "
               "nets are red. A profile that falls towards the input means vanishing gradients, "
               "one that rises means exploding gradients.")
    return Plot("gradient_flow", fig, "Gradient flow: per-block gradient norm", caption)


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The points no other point beats on both lower ``x`` and higher ``y``, by increasing x."""
    ordered = points.sort_values([x, y], ascending=[True, False])
    best = -math.inf
    keep = []
    for index, value in ordered[y].items():
        if value > best:
            keep.append(index)
            best = value
    return ordered.loc[keep]


@styled
def pareto(trials: pd.DataFrame, x: str = "macs", color_by: str = "shortcut") -> Plot:
    """Best validation accuracy against cost, one point per spec, with the Pareto front."""
    column = PARETO_AXES[x]
    name, scale, unit = METRIC_AXES[column]
    done = completed(trials)
    if column not in done or not done[column].notna().any():
        raise NotAvailable(f"no completed trial has a measured {name} ({column})")
    points = (done.dropna(subset=[column, "best_val_acc"])
              .groupby(spec_id(done), sort=False)
              .agg(name=("name", "first"),
                   group=(color_by, "first"),
                   cost=(column, "mean"), acc=("best_val_acc", "mean"))
              .reset_index())
    points["cost"] = points["cost"] / scale
    points["acc"] = 100 * points["acc"]
    points["group"] = points["group"].astype(object).where(points["group"].notna(), "n/a")
    fig, (ax,) = _figure(width=6.0, height=4.0)
    colors = group_colors(_sorted_values(points["group"]), color_by)
    for value, color in colors.items():
        group = points[points["group"] == value]
        ax.scatter(group["cost"], group["acc"], color=color, s=22, alpha=0.85,
                   label=group_label(value, color_by))
    front = pareto_front(points, "cost", "acc")
    ax.plot(front["cost"], front["acc"], color="black", linewidth=1.0, drawstyle="steps-post",
            label="Pareto front")
    if len(front) <= 12:
        for _, row in front.iterrows():
            ax.annotate(row["name"], (row["cost"], row["acc"]), fontsize=6,
                        xytext=(3, -8), textcoords="offset points")
    if points["cost"].min() > 0 and points["cost"].max() / points["cost"].min() > 10:
        ax.set_xscale("log")
    ax.set(xlabel=f"{name} ({unit})", ylabel="best validation accuracy (%)",
           title=f"Accuracy against {name}")
    ax.legend(frameon=False, loc="best")
    caption = (f"Best validation accuracy (mean over seeds) against {name}, one point per spec "
               f"({len(points)}); the line joins the Pareto-optimal specs, those no other spec "
               f"beats on both cost and accuracy." + _unfinished_note(trials))
    return Plot(f"pareto_{x}", fig, f"Pareto front: accuracy against {name}", caption)


def _binned(values: pd.Series, bins: int = 3) -> pd.Series:
    """Many-valued numeric choices (learning rates) cut into quantile bins named by their range;
    whole floats (a depth read back as 8.0) shown as integers."""
    import pandas as pd
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and numeric.nunique() > 6:
        codes = pd.qcut(numeric, bins, labels=False, duplicates="drop")
        ranges = numeric.groupby(codes).agg(["min", "max"])
        names = {code: f"{r['min']:.3g}–{r['max']:.3g}" for code, r in ranges.iterrows()}
        return codes.map(names).astype(object)
    return values.map(lambda v: "n/a" if v is None or v != v else
                      int(v) if isinstance(v, float) and v.is_integer() else v).astype(object)


@styled
def edf(population: pd.DataFrame, choices: list[str]) -> Plot:
    """Error distribution functions per design choice (Radosavovic et al. 2020, Fig. 2–5).

    For each choice with several values, one curve per value: the fraction of completed models
    whose validation error is below x. Unfinished trials have no final error and are counted
    in the caption instead.
    """
    done = completed(population).dropna(subset=["best_val_acc"])
    choices = [c for c in choices if c in done and done[c].nunique() > 1]
    if len(done) < 2 or not choices:
        raise NotAvailable("the population has no design choice taking two or more values "
                           "among its completed trials")
    ncols = min(3, len(choices))
    nrows = math.ceil(len(choices) / ncols)
    fig, axes = _figure(ncols=ncols, nrows=nrows, width=3.6, height=2.9)
    error = 100 * (1 - done["best_val_acc"].astype(float))
    for ax, choice in zip(axes, choices):
        groups = _binned(done[choice])
        values = _sorted_values(groups)
        colors = group_colors(values, choice.removeprefix("search.params."))
        for value in values:
            errs = error[groups == value].sort_values().to_numpy()
            fraction = [(i + 1) / len(errs) for i in range(len(errs))]
            label = shortcut_label(value) if choice.endswith("shortcut") else str(value)
            ax.step([errs[0], *errs], [0.0, *fraction], where="post", color=colors[value],
                    label=f"{label} (n={len(errs)})")
        ax.set(xlabel="validation error (%)", ylabel="cumulative fraction of models",
               title=choice.removeprefix("search.params."), ylim=(0, 1.02))
        ax.legend(frameon=False, loc="lower right")
    for ax in axes[len(choices):]:
        ax.set_visible(False)
    fig.suptitle("Error distribution functions by design choice")
    caption = (f"Empirical distribution of best validation error over {len(done)} completed "
               f"models, one curve per value of each design choice (Radosavovic et al. 2020); "
               f"a curve further up and left is a better choice." + _unfinished_note(population))
    return Plot("edf", fig, "Error distribution functions by design choice", caption)


@styled
def optimisation_history(search: pd.DataFrame, name: str, metric: str = "best_val_acc",
                         direction: str = "maximize") -> Plot:
    """Each trial's objective by trial number, the best-so-far line, unfinished trials marked.

    Drawn from the records alone, so it works for the Optuna and the Ray runner. Trials with no
    value (failed, infeasible) are marked along the bottom edge.
    """
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory
    data = search.dropna(subset=["search.trial_number"]).sort_values("search.trial_number")
    if not len(data):
        raise NotAvailable("no trial carries a search trial number")
    label, scale, unit = METRIC_AXES.get(metric, (metric, 1.0, "as recorded"))
    value = data[metric].astype(float) / scale
    fig, (ax,) = _figure(width=6.0, height=3.4)
    bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for status in [s for s in STATUSES if s in set(data["status"])]:
        rows = data["status"] == status
        scored, unscored = rows & value.notna(), rows & value.isna()
        style = dict(marker=STATUS_MARKERS[status], color=STATUS_COLORS[status], s=20)
        if scored.any():
            ax.scatter(data.loc[scored, "search.trial_number"], value[scored],
                       label=f"{status} ({int(rows.sum())})", **style)
        if unscored.any():
            ax.scatter(data.loc[unscored, "search.trial_number"], [0.02] * int(unscored.sum()),
                       transform=bottom, clip_on=False,
                       label=None if scored.any() else f"{status} ({int(rows.sum())})", **style)
    done = (data["status"] == "completed") & value.notna()
    if done.any():
        best = value[done].cummax() if direction == "maximize" else value[done].cummin()
        ax.plot(data.loc[done, "search.trial_number"], best, drawstyle="steps-post",
                color="black", linewidth=1.2, label="best so far")
    ax.set(xlabel="trial number", ylabel=f"{label} ({unit})",
           title=f"Optimisation history: {name}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(frameon=False, loc="best")
    caption = (f"Objective ({label}, {direction}d) of every trial by trial number, with the "
               f"best completed value so far; trials with no value are marked on the bottom "
               f"edge.")
    return Plot(f"history_{slug(name)}", fig, f"Optimisation history: {name}", caption)


@styled
def importances(values: dict[str, float], name: str, computed_by: str) -> Plot:
    """Hyperparameter importances of an Optuna study as a horizontal bar chart."""
    if not values:
        raise NotAvailable("Optuna returned no importances")
    items = sorted(values.items(), key=lambda kv: kv[1])
    fig, (ax,) = _figure(width=5.0, height=0.35 * len(items) + 1.4)
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    ax.set(xlabel="importance (normalised, sums to 1)", ylabel="hyperparameter",
           title=f"Parameter importances: {name}")
    caption = (f"Importance of each searched parameter, from Optuna's {computed_by}, over the "
               f"study's completed trials.")
    return Plot(f"importances_{slug(name)}", fig, f"Parameter importances: {name}", caption)


def slug(text: str) -> str:
    """A file-name-safe form of an experiment or study name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))[:60]
