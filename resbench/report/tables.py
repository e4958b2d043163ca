"""Report tables from the store's trial DataFrame: pure pandas, no plotting, no I/O.

``prepare`` completes the store's table (expected columns, recipe variants, display names);
every other function here and in ``figures`` takes its result.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from resbench.store import STATUSES  # every trial status, in the order tables list them

if TYPE_CHECKING:
    import pandas as pd


KEY_FIELDS = ("block", "shortcut", "depth", "width")
"""Spec fields shown beside the name in the leaderboard."""

COST_METRICS = ("params", "macs", "latency_ms_b1", "images_per_s")
"""Per-spec measurements that do not depend on the seed (first completed value is shown)."""

SEED_METRICS = ("best_val_acc", "final_val_acc", "final_train_acc", "final_train_loss")
"""Per-trial results averaged over seeds (mean and standard deviation)."""

ABLATION_FIELDS = ("block", "shortcut", "depths", "widths", "stem", "stem_width", "strides",
                   "norm", "activation", "groups", "width_per_group", "se_ratio",
                   "stochastic_depth", "zero_init_residual", "head_dropout", "num_classes",
                   "input_channels", "input_size")
"""Summary fields two specs may differ in to form a paired ablation (depth/width follow
depths/widths, so they are not separate axes). Options that follow from another field (a
block's expansion, a shortcut's gate_bias or scale) are not axes of their own; per-stage
differences behind a ``mixed`` value are not seen."""

ABLATION_LABELS = {"depths": "depth", "widths": "width"}


METRIC_COLUMNS = ("params", "macs", "latency_ms_b1", "images_per_s", "best_val_acc",
                  "final_val_acc", "final_train_acc", "final_train_loss", "epochs")


def with_expected_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The trial table with every column the report reads, empty where no record has it yet
    (e.g. a suite whose trials have all failed has no accuracy column at all)."""
    missing = [c for c in (*KEY_FIELDS, *ABLATION_FIELDS, *METRIC_COLUMNS) if c not in df]
    return df.assign(**{c: float("nan") for c in missing}) if missing else df


class NotAvailable(Exception):
    """A report section has no data to show; the message says why, in one sentence."""


def spec_groups(df: pd.DataFrame) -> list[str]:
    """Columns that identify one spec under one recipe: its rows differ only by seed."""
    return [c for c in ("experiment", "spec_name", "spec_key", "recipe_variant")
            if c in df.columns]


def spec_id(df: pd.DataFrame) -> list[str]:
    """The shortest such key: experiment, architecture hash and recipe variant."""
    return [c for c in ("experiment", "spec_key", "recipe_variant") if c in df.columns]


def with_recipe_variant(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``recipe_variant``: the recipe fields that vary within the trial's experiment, as
    ``optimizer.lr=0.05`` (empty when the experiment trains everything alike).

    A suite's overrides (or a search's sampled learning rate) train one architecture under
    several recipes; each is its own leaderboard row, never averaged with the others.
    """
    import pandas as pd

    labels = pd.Series("", index=df.index, dtype=object)
    for _, trials in df.groupby("experiment", sort=False):
        varying = [c for c in recipe_columns(trials) if trials[c].map(repr).nunique() > 1]
        for index, row in trials[varying].iterrows():
            labels[index] = ", ".join(f"{c.removeprefix('recipe.')}={_plain(row[c])}"
                                      for c in varying)
    return df.assign(recipe_variant=labels)


def with_names(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``name``: the spec name, with ``#n`` for a search trial (a search names every
    sampled spec after its space)."""
    names = df["spec_name"].astype(str)
    if "search.trial_number" in df:
        number = df["search.trial_number"]
        names = names.where(number.isna(), names + " #" + number.map(_plain))
    return df.assign(name=names)


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The store's trial table with what every report table and figure relies on."""
    return with_names(with_recipe_variant(with_expected_columns(df)))


def _plain(value) -> str:
    """A cell as text: whole floats as integers, missing as ``none``."""
    if value is None or (isinstance(value, float) and value != value):
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def recipe_columns(df: pd.DataFrame) -> list[str]:
    """The flat recipe columns that define the training condition (seeds excluded)."""
    return [c for c in df.columns if c.startswith("recipe.") and "seed" not in c]


def completed(df: pd.DataFrame) -> pd.DataFrame:
    """Only the trials that finished normally."""
    return df[df["status"] == "completed"]


def status_summary(status: pd.Series) -> str:
    """``"completed 2, diverged 1"``: how many trials of a group ended in each status."""
    counts = status.value_counts()
    order = [s for s in STATUSES if s in counts.index] + sorted(
        str(s) for s in counts.index if s not in STATUSES)
    return ", ".join(f"{s} {int(counts[s])}" for s in order)


def leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    """One row per spec (per experiment): key fields, cost, mean/std over seeds, status counts.

    Means and standard deviations (ddof=1) are over completed trials only; a spec none of whose
    trials completed still has its row, with empty metrics and its status counts.
    """
    import pandas as pd

    keys = spec_groups(df)
    rows = []
    for group_key, trials in df.groupby(keys, sort=False, dropna=False):
        done = completed(trials)
        first = done.iloc[0] if len(done) else trials.iloc[0]
        row = dict(zip(keys, group_key if isinstance(group_key, tuple) else (group_key,)))
        row["name"] = first["name"]
        for field in KEY_FIELDS:
            row[field] = first.get(field)
        for metric in COST_METRICS:
            row[metric] = first.get(metric) if len(done) else float("nan")
        for metric in SEED_METRICS:
            values = done[metric].astype(float) if metric in done else pd.Series(dtype=float)
            row[f"{metric}_mean"] = values.mean() if len(values) else float("nan")
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
        row["epochs"] = done["epochs"].max() if len(done) and "epochs" in done else float("nan")
        row["seeds"] = int(trials["seed"].nunique()) if "seed" in trials else len(trials)
        row["completed"] = len(done)
        row["trials"] = len(trials)
        row["status"] = status_summary(trials["status"])
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("best_val_acc_mean", ascending=False, na_position="last",
                             kind="stable").reset_index(drop=True)


def status_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Trials per experiment and status, every known status a column (zeros kept)."""
    table = df.groupby(["experiment", "status"]).size().unstack(fill_value=0)
    columns = list(STATUSES) + [s for s in table.columns if s not in STATUSES]
    table = table.reindex(columns=columns, fill_value=0)
    table["total"] = table.sum(axis=1)
    return table.reset_index().rename_axis(columns=None)


def unfinished_trials(df: pd.DataFrame) -> pd.DataFrame:
    """Every trial that did not complete, with its status and reason, so none goes unseen."""
    cols = [c for c in ("experiment", "spec_name", "seed", "status", "reason", "epochs",
                        "params", "macs", "search.trial_number") if c in df.columns]
    rest = df[df["status"] != "completed"][cols]
    order = [c for c in ("status", "experiment", "spec_name", "seed") if c in cols]
    return rest.sort_values(order, kind="stable").reset_index(drop=True)


def _ablation_value_order(values: list) -> list:
    """Baseline first: ``none`` (a plain net) before any shortcut, otherwise natural order."""
    def sort_key(v):
        if v == "none":
            return (0, 0, "")
        if isinstance(v, (int, float)):
            return (1, float(v), "")
        return (2, 0, str(v))
    return sorted(values, key=sort_key)


def paired_ablations(df: pd.DataFrame) -> pd.DataFrame:
    """Pairs of specs that differ in exactly one field, compared on matched seeds.

    Two specs pair up when every other ablation field and every recipe field are equal and they
    have completed trials with the same seed. The difference is B − A per seed; mean, standard
    deviation (ddof=1) and the number of seeds B beat A are reported. The baseline A is the
    first value in natural order (``none`` first, so plain nets are the baseline).
    """
    import pandas as pd

    done = completed(df).copy()
    fields = [f for f in ABLATION_FIELDS if f in done.columns]
    conditions = recipe_columns(done)
    for column in conditions:  # recipe cells may be tuples or mappings: group on their text
        done[column] = done[column].map(repr)
    rows = []
    for field in fields:
        others = [f for f in fields if f != field] + conditions
        for _, group in done.groupby(others, sort=False, dropna=False) if others else [((), done)]:
            values = _ablation_value_order(list(group[field].dropna().unique()))
            for i, a in enumerate(values):
                for b in values[i + 1:]:
                    rows.extend(_pair_rows(group, field, a, b))
    columns = ["field", "depth", "a", "b", "experiment_a", "spec_a", "experiment_b", "spec_b", "seeds", "val_acc_a", "val_acc_b",
               "delta_val_acc_mean", "delta_val_acc_std", "b_wins", "delta_train_loss_mean",
               "delta_train_loss_std"]
    table = pd.DataFrame(rows, columns=columns)
    # Grouped by the field compared, shallow to deep within it (the order a reader scans).
    return table.sort_values(["field", "depth"], kind="stable").reset_index(drop=True)


def _pair_rows(group: pd.DataFrame, field: str, a, b) -> list[dict]:
    """The comparison of each spec with value ``a`` against each with ``b``, on shared seeds."""
    rows = []
    specs = spec_id(group)
    for (exp_a, *_), trials_a in group[group[field] == a].groupby(specs, sort=False):
        for (exp_b, *_), trials_b in group[group[field] == b].groupby(specs, sort=False):
            left = trials_a.drop_duplicates("seed").set_index("seed")
            right = trials_b.drop_duplicates("seed").set_index("seed")
            seeds = left.index.intersection(right.index)
            if not len(seeds):
                continue
            d_acc = right.loc[seeds, "final_val_acc"] - left.loc[seeds, "final_val_acc"]
            d_loss = right.loc[seeds, "final_train_loss"] - left.loc[seeds, "final_train_loss"]
            label_a, label_b = a, b
            if field in ABLATION_LABELS:  # "8 (1-1-1)": the total beside the per-stage values
                total = ABLATION_LABELS[field]
                label_a = f"{left[total].iloc[0]} ({a})"
                label_b = f"{right[total].iloc[0]} ({b})"
            rows.append({
                "field": ABLATION_LABELS.get(field, field),
                "depth": int(left["depth"].iloc[0]) if "depth" in left else None,
                "a": label_a, "b": label_b,
                "experiment_a": exp_a, "spec_a": left["name"].iloc[0],
                "experiment_b": exp_b, "spec_b": right["name"].iloc[0],
                "seeds": len(seeds),
                "val_acc_a": left.loc[seeds, "final_val_acc"].mean(),
                "val_acc_b": right.loc[seeds, "final_val_acc"].mean(),
                "delta_val_acc_mean": d_acc.mean(),
                "delta_val_acc_std": d_acc.std(ddof=1) if len(seeds) > 1 else float("nan"),
                "b_wins": int((d_acc > 0).sum()),
                "delta_train_loss_mean": d_loss.mean(),
                "delta_train_loss_std": d_loss.std(ddof=1) if len(seeds) > 1 else float("nan"),
            })
    return rows
