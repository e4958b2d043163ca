"""Report sections of the trial analyses (``recipe.analyses`` / ``resbench analyze``): lesion
study, signal propagation, shattered gradients and loss landscape.

Reads the ``analyses`` of the records only (never ``resbench.analysis``). Each section has one
figure whose caption states what the paper found and what this run measured, computed from the
records; a section without data says why.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resbench.report import figures
from resbench.report.figures import PALETTE, SHORTCUT_COLORS, Plot, styled
from resbench.report.sections import Section
from resbench.report.tables import NotAvailable
from resbench.store import Store, TrialRecord

PREFIXES = ("lesion", "signal_propagation", "shattered_gradients", "loss_landscape")
"""File-name prefixes of this module's figures (so a later report removes stale ones)."""

LINESTYLES = ("-", "--", ":", "-.")
MAX_SURFACES = 2  # contour panels in the landscape figure: a plain and a residual net


@dataclass
class Series:
    """The completed trials of one architecture in one experiment (seeds pooled)."""

    experiment: str
    spec_name: str
    spec_key: str
    shortcut: str
    depth: float
    records: list[TrialRecord] = field(default_factory=list)
    tag: str = ""  # the spec key's start, where several architectures share a name (a search)

    @property
    def plain(self) -> bool:
        return self.shortcut == "none"

    @property
    def name(self) -> str:
        return f"{self.spec_name} {self.tag}" if self.tag else self.spec_name

    def label(self, several_experiments: bool) -> str:
        kind = "plain" if self.plain else f"{self.shortcut} shortcut"
        where = f"{self.experiment}/" if several_experiments else ""
        return f"{where}{self.name} ({kind})"


def analysed_series(folders: Iterable[Path], name: str) -> list[Series]:
    """Every spec with at least one completed trial holding analysis ``name``, ordered plain
    first, then by shortcut and depth."""
    groups: dict[tuple[str, str], Series] = {}
    for folder in folders:
        for record in Store(folder).records(strict=False):
            if record.status != "completed" or record.analyses is None \
                    or getattr(record.analyses, name) is None:
                continue
            summary = record.summary or {}
            key = (record.experiment or folder.name, record.spec_name, record.spec_key)
            series = groups.setdefault(key, Series(
                key[0], record.spec_name, record.spec_key, str(summary.get("shortcut", "?")),
                float(summary.get("depth") or 0)))
            series.records.append(record)
    names = defaultdict(int)
    for experiment, name, _ in groups:
        names[(experiment, name)] += 1
    for (experiment, name, spec_key), series in groups.items():
        if names[(experiment, name)] > 1:
            series.tag = spec_key[:6]
    return sorted(groups.values(), key=lambda s: (not s.plain, s.shortcut, s.depth, s.spec_name,
                                                   s.spec_key))


def _mean(values: Iterable[float | None]) -> float:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(kept) if kept else math.nan


def _styles(series: list[Series]) -> list[dict[str, Any]]:
    """Colour by shortcut kind (plain red), line style by depth."""
    depths = sorted({s.depth for s in series})
    several = len({s.experiment for s in series}) > 1
    return [dict(color=SHORTCUT_COLORS.get(s.shortcut, PALETTE[i % len(PALETTE)]),
                 linestyle=LINESTYLES[depths.index(s.depth) % len(LINESTYLES)],
                 label=s.label(several)) for i, s in enumerate(series)]


def _legend(ax: Any, n: int) -> None:
    if n <= 12:
        ax.legend(frameon=False, loc="best", fontsize=7)


def _by_class(series: list[Series], value) -> tuple[float, float, int, int]:
    """``value(series)`` averaged over residual series and over plain series, and their counts."""
    res = [value(s) for s in series if not s.plain]
    plain = [value(s) for s in series if s.plain]
    return _mean(res), _mean(plain), len(res), len(plain)


def _specs(n: int) -> str:
    return f"{n} spec{'' if n == 1 else 's'}"


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


# lesion ------------------------------------------------------------------------------------------

def _single_lesions(s: Series) -> dict[int, tuple[float, bool, str]]:
    """Block index → (mean validation error in %, downsampling?, block name), over seeds."""
    errors: dict[int, list[float]] = defaultdict(list)
    meta: dict[int, tuple[bool, str]] = {}
    for r in s.records:
        for row in r.analyses.lesion.blocks:
            meta[row.index] = (row.downsample, row.block)
            if row.val_acc is not None:
                errors[row.index].append(100 * (1 - row.val_acc))
    return {i: (_mean(errors[i]), meta[i][0], meta[i][1]) for i in sorted(meta)}


def _intact_error(s: Series) -> float:
    return _mean(100 * (1 - r.analyses.lesion.val_acc) for r in s.records
                 if r.analyses.lesion.val_acc is not None)


def _lesion_increase(s: Series) -> float:
    """Mean rise in validation error (points) from removing one non-downsampling block."""
    intact = _intact_error(s)
    rows = [e for e, down, _ in _single_lesions(s).values() if not down and not math.isnan(e)]
    return _mean(e - intact for e in rows)


@styled
def lesion_figure(series: list[Series]) -> Plot:
    """Error with each block removed (left) and with k random blocks removed (right)."""
    if not series:
        raise NotAvailable("no completed trial ran the lesion study (recipe `analyses: "
                           "[lesion]`, or `resbench analyze RESULTS --analyses lesion`)")
    fig, (single_ax, k_ax) = figures._figure(ncols=2, width=4.6)
    for s, style in zip(series, _styles(series)):
        rows = _single_lesions(s)
        xs = [i for i in rows if not math.isnan(rows[i][0])]
        single_ax.plot(xs, [rows[i][0] for i in xs], marker="o", markersize=2.5, **style)
        down = [i for i in xs if rows[i][1]]
        single_ax.plot(down, [rows[i][0] for i in down], linestyle="none", marker="s",
                       markersize=6, markerfacecolor="none", color=style["color"])
        single_ax.axhline(_intact_error(s), color=style["color"], linewidth=0.8, alpha=0.5,
                          linestyle=":")
        by_k: dict[int, list[float]] = defaultdict(list)
        for r in s.records:
            for d in r.analyses.lesion.random:
                if d.val_acc is not None:
                    by_k[d.k].append(100 * (1 - d.val_acc))
        ks = sorted(by_k)
        k_ax.plot([0, *ks], [_intact_error(s), *(_mean(by_k[k]) for k in ks)], marker="o",
                  markersize=2.5, **style)
    single_ax.set(xlabel="removed block (index, input → output; squares: downsampling)",
                  ylabel="validation error (%)", title="One block removed")
    k_ax.set(xlabel="blocks removed at random (k)", ylabel="validation error (%)",
             title="k random blocks removed")
    _legend(k_ax, len(series))
    res, plain, n_res, n_plain = _by_class(series, _lesion_increase)
    caption = ("Veit et al. 2016 found that removing one block of a trained residual net "
               "barely changes its error (downsampling blocks aside) and that error grows "
               "smoothly with the number removed, while removing one layer of a plain net "
               "breaks it. Here removing one non-downsampling block raised validation error by "
               f"{_fmt(res)} points on average in residual nets ({_specs(n_res)}) and by "
               f"{_fmt(plain)} points in plain nets ({_specs(n_plain)}); dotted lines: intact "
               "error.")
    return Plot("lesion", fig, "Lesion study: validation error with residual branches removed",
                caption)


# signal propagation --------------------------------------------------------------------------------

def _signal_profile(s: Series, column: str) -> dict[int, float]:
    values: dict[int, list[float]] = defaultdict(list)
    for r in s.records:
        for row in r.analyses.signal.rows:
            values[row.index].append(getattr(row, column))
    return {i: _mean(values[i]) for i in sorted(values)}


def _variance_growth(s: Series) -> float:
    """Channel variance at the last block over that at the first."""
    profile = _signal_profile(s, "channel_variance")
    if not profile:
        return math.nan
    first, last = profile[min(profile)], profile[max(profile)]
    return last / first if first > 0 else math.nan


@styled
def signal_figure(series: list[Series]) -> Plot:
    """Squared channel mean and channel variance per block at initialisation."""
    if not series:
        raise NotAvailable("no completed trial measured signal propagation (recipe `analyses: "
                           "[signal]`, or `resbench analyze RESULTS --analyses signal`)")
    fig, (mean_ax, var_ax) = figures._figure(ncols=2, width=4.6)
    for s, style in zip(series, _styles(series)):
        for ax, column in ((mean_ax, "mean_sq_channel_mean"), (var_ax, "channel_variance")):
            profile = _signal_profile(s, column)
            ax.plot(list(profile), list(profile.values()), marker="o", markersize=2.5, **style)
    mean_ax.set(xlabel="block (input → output)", ylabel="mean squared channel mean",
                yscale="log", title="Squared channel mean")
    var_ax.set(xlabel="block (input → output)", ylabel="average channel variance",
               yscale="log", title="Channel variance")
    _legend(var_ax, len(series))
    res, plain, n_res, n_plain = _by_class(series, _variance_growth)
    caption = ("Brock et al. 2021 found that in batch-normalised residual nets the channel "
               "variance of the residual stream grows with depth, reset at transition blocks, "
               "while the squared channel mean stays small; plain and norm-free nets need their "
               "own scaling to keep it flat. Here, at initialisation on one training batch, the "
               f"variance at the last block was {_fmt(res, 2)}x that at the first in residual "
               f"nets ({_specs(n_res)}) and {_fmt(plain, 2)}x in plain nets ({_specs(n_plain)}).")
    return Plot("signal_propagation", fig, "Signal propagation at initialisation", caption)


# shattered gradients -----------------------------------------------------------------------------

def _shatter_profile(s: Series) -> dict[int, float]:
    values: dict[int, list[float]] = defaultdict(list)
    for r in s.records:
        for row in r.analyses.shatter.rows:
            values[row.index].append(row.correlation)
    return {i: _mean(values[i]) for i in sorted(values)}


def _last_correlation(s: Series) -> float:
    profile = _shatter_profile(s)
    return profile[max(profile)] if profile else math.nan


@styled
def shatter_figure(series: list[Series]) -> Plot:
    """Neighbouring-input gradient correlation after each block, at initialisation."""
    if not series:
        raise NotAvailable("no completed trial measured shattered gradients (recipe `analyses: "
                           "[shatter]`, or `resbench analyze RESULTS --analyses shatter`)")
    fig, (ax,) = figures._figure(width=6.0, height=3.6)
    for s, style in zip(series, _styles(series)):
        profile = _shatter_profile(s)
        ax.plot(list(profile), list(profile.values()), marker="o", markersize=2.5, **style)
    ax.set(xlabel="readout after block (input → output)",
           ylabel="correlation of neighbouring input gradients", title="Gradient correlation")
    _legend(ax, len(series))
    deepest_res = max((s for s in series if not s.plain), key=lambda s: s.depth, default=None)
    deepest_plain = max((s for s in series if s.plain), key=lambda s: s.depth, default=None)
    measured = "; ".join(
        f"{s.name} (depth {s.depth:g}) {_fmt(_last_correlation(s), 2)}"
        for s in (deepest_plain, deepest_res) if s is not None)
    caption = ("Balduzzi et al. 2017 found that gradients with respect to the input decorrelate "
               "across nearby inputs exponentially with depth in plain nets ('shattered', like "
               "white noise) and far more slowly in residual nets. Here, at initialisation along "
               f"a line between two training images, the correlation after the last block was: "
               f"{measured}.")
    return Plot("shattered_gradients", fig, "Shattered gradients at initialisation", caption)


# loss landscape ---------------------------------------------------------------------------------

def _path(s: Series) -> dict[float, float]:
    values: dict[float, list[float]] = defaultdict(list)
    for r in s.records:
        for p in r.analyses.landscape.path:
            values[round(p.alpha, 9)].append(p.loss)
    return {a: _mean(values[a]) for a in sorted(values)}


def _monotone(record: TrialRecord) -> bool:
    """Whether the loss never rises along the path from alpha 0 to alpha 1."""
    losses = [p.loss for p in record.analyses.landscape.path if 0 <= p.alpha <= 1]
    return all(b <= a + 1e-9 for a, b in zip(losses, losses[1:]))


def _surface(record: TrialRecord) -> tuple[list[float], list[list[float]]]:
    land = record.analyses.landscape
    return land.coords, [[math.nan if v is None else v for v in row] for row in land.surface]


def local_minima(grid: list[list[float]]) -> int:
    """Grid points whose loss is below that of every neighbour (8-neighbourhood, the border
    compared with the neighbours it has): 1 for a bowl, more for a rugged slice."""
    n, m = len(grid), len(grid[0]) if grid else 0
    count = 0
    for i in range(n):
        for j in range(m):
            around = [grid[a][b] for a in range(max(i - 1, 0), min(i + 2, n))
                      for b in range(max(j - 1, 0), min(j + 2, m)) if (a, b) != (i, j)]
            if not math.isnan(grid[i][j]) and all(grid[i][j] < v for v in around
                                                  if not math.isnan(v)):
                count += 1
    return count


@styled
def landscape_figure(series: list[Series]) -> Plot:
    """The 1-D path from initial to trained weights, and contour plots of 2-D slices."""
    if not series:
        raise NotAvailable("no completed trial measured its loss landscape (recipe `analyses: "
                           "[landscape]`, or `resbench analyze RESULTS --analyses landscape`)")
    shown = _surfaces_to_show(series)
    fig, axes = figures._figure(ncols=1 + len(shown), width=3.6, height=3.2)
    path_ax = axes[0]
    for s, style in zip(series, _styles(series)):
        path = _path(s)
        path_ax.plot(list(path), list(path.values()), marker="o", markersize=2, **style)
    for x in (0, 1):
        path_ax.axvline(x, color="#999999", linewidth=0.6)
    path_ax.set(xlabel="alpha (0: initial, 1: trained weights)", ylabel="training loss",
                yscale="log", title="Linear path")
    _legend(path_ax, len(series))
    for ax, s in zip(axes[1:], shown):
        coords, grid = _surface(s.records[0])
        contour = ax.contour(coords, coords, grid, levels=12, linewidths=0.8, cmap="viridis")
        ax.clabel(contour, fontsize=6, inline=True, fmt="%.2g")
        ax.plot([0], [0], marker="*", color="#d62728")
        ax.set(xlabel="direction 2", ylabel="direction 1", title=f"{s.name} "
               f"({'plain' if s.plain else s.shortcut}, seed {s.records[0].seed})")
        ax.set_aspect("equal")
    records = [r for s in series for r in s.records]
    monotone = sum(_monotone(r) for r in records)
    res, plain, n_res, n_plain = _by_class(
        series, lambda s: _mean(local_minima(_surface(r)[1]) for r in s.records))
    caption = ("Goodfellow et al. 2015 found the loss falls monotonically along the straight "
               "line from initial to trained weights; Li et al. 2018 found skip connections keep "
               "the slice around the trained weights smooth and bowl-shaped where deep plain nets "
               f"turn chaotic. Here the path was monotone in {monotone} of {len(records)} trials; "
               f"the slice held {_fmt(res)} local minima on average in residual nets "
               f"({_specs(n_res)}) and {_fmt(plain)} in plain nets ({_specs(n_plain)}); contours: "
               f"{' and '.join(s.name for s in shown) or 'none'} (star: trained weights).")
    return Plot("loss_landscape", fig, "Loss landscape: linear path and 2-D slices", caption)


def _surfaces_to_show(series: list[Series]) -> list[Series]:
    """A plain and a residual spec at the greatest depth both have (Li et al.'s comparison), else
    the deepest of each kind; at most MAX_SURFACES."""
    with_surface = [s for s in series if any(r.analyses.landscape.surface for r in s.records)]
    order = sorted(with_surface, key=lambda s: -s.depth)
    plain = [s for s in order if s.plain]
    residual = [s for s in order if not s.plain]
    shared = sorted({s.depth for s in plain} & {s.depth for s in residual}, reverse=True)
    if shared:
        plain = [s for s in plain if s.depth == shared[0]]
        residual = [s for s in residual if s.depth == shared[0]]
    picked = plain[:1] + residual[:1]
    return (picked + [s for s in order if s not in picked])[:MAX_SURFACES]


# sections -------------------------------------------------------------------------------------

SECTIONS = (
    ("lesion", "lesion", "Lesion study (Veit et al. 2016)", lesion_figure),
    ("signal", "signal", "Signal propagation at initialisation (Brock et al. 2021)", signal_figure),
    ("shatter", "shatter", "Shattered gradients (Balduzzi et al. 2017)", shatter_figure),
    ("landscape", "landscape", "Loss landscape (Goodfellow et al. 2015; Li et al. 2018)",
     landscape_figure),
)


def analysis_sections(folders: list[Path], figure_dir: Path) -> list[Section]:
    """One section per analysis, each with its figure or the reason it has none."""
    out = []
    for id_, name, title, build in SECTIONS:
        section = Section(id_, title)
        section.add_plot(build, figure_dir, analysed_series(folders, name))
        out.append(section.finish())
    return out
