"""Search benchmark: what each runner costs per trial, and what ASHA+TPE saves over a grid.

Measures, on this machine's CPU:
  1. per-trial overhead of the local (Optuna) and Ray Tune runners on trivially small trials
     (one epoch of a 4-channel net on 64 synthetic images): the search's wall time minus the
     time spent training, per trial, with one trial at a time so the two are comparable (Ray's
     cluster start-up is timed apart, and a short warm-up search runs first, so imports and
     first calls are not counted); the local runner on its default storage (Optuna's journal
     file) and on the SQLite file earlier versions used, as a ratio; Ray with and without actor
     reuse. Each runner's non-training seconds are split into a per-trial part (the slope
     between a small and a large search) and a fixed part per search (study, Tuner, the first
     actor's process); with a fresh actor per trial every trial pays that again, so its figure
     is all seconds over its trials. Targets (issue 11, per trial): <= 0.05 s local, <= 0.1 s
     Ray;
  2. search efficiency on ``specs/spaces/cifar_small.yaml`` (CIFAR-style ResNets on ``digits``):
     an exhaustive grid (local runner) against ASHA+TPE (Ray runner); the share of the grid's
     compute, in epochs trained and in training seconds, that ASHA+TPE spends before one of its
     trials comes within 1 point of the grid's best validation accuracy.

Run: python benchmarks/bench_search.py [--trials 32] [--ray-repeats 2] [--budget 0.5] [--quick]
                                        [--overhead-only] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from resbench.search import SearchConfig, run_search  # noqa: E402
from resbench.search.config import RayOptions  # noqa: E402
from resbench.spec.space import load_space  # noqa: E402
from resbench.store import TrialRecord  # noqa: E402

TRIVIAL = {
    "name": "trivial", "stem": {"kind": "cifar", "width": 4}, "shortcut": "projection",
    "stages": [{"depth": 1, "width": 4, "stride": 1}],
    "recipe": {"epochs": 1, "batch_size": 64, "grad_probe_steps": [], "latency_batch": 2,
               "optimizer": {"name": "sgd", "lr": {"$float": [1.0e-3, 0.3], "log": True}},
               "data": {"name": "synthetic", "image_size": 8,
                        "options": {"count": 80, "num_classes": 4}}},
}


def train_seconds(records: list[TrialRecord]) -> float:
    return sum(r.metrics.total_time_s or 0.0 for r in records)


def steady_ray_overhead(records: list[TrialRecord]) -> float | None:
    """Seconds per trial that are not training once a Ray search runs, from the records' own
    clocks: from the end of its first trial (the actor process started, imports done) to the end
    of its last, less the training of the trials in between, over their number. One trial at a
    time, so this is every gap between trials (driver, searcher, actor reset) and every
    non-training second inside them; the fixed costs of the search lie outside it."""
    records = sorted((r for r in records if r.search and r.search.ray
                      and r.search.ray.finished), key=lambda r: r.search.ray.finished)
    if len(records) < 2:
        return None
    span = records[-1].search.ray.finished - records[0].search.ray.finished
    return (span - train_seconds(records[1:])) / (len(records) - 1)


def overhead(root: Path, trials: int, repeats: int,
             ray_repeats: int) -> dict[str, dict[str, float]]:
    """Seconds that are not training, per trial and per search, for each runner.

    Each runner runs searches of ``small`` and of ``trials`` trivial trials, one trial at a
    time; the non-training seconds of a search (wall minus the records' ``total_time_s``) are
    split into a per-trial part (the slope between the two sizes) and a fixed part (study,
    manifest, for Ray the Tuner and the first actor's process). Searches are repeated
    (``repeats`` times, Ray's ``ray_repeats`` times) and the fastest taken: this machine's cores
    are shared, and a Ray search's fixed part (seconds, mostly the actor process starting)
    varies by more than the per-trial part of a small search, so the sizes are far apart.
    """
    import ray

    from resbench.search.ray_runner import _runtime_env

    space_file = root / "trivial.yaml"
    space_file.write_text(yaml.safe_dump(TRIVIAL))
    space = load_space(space_file)
    out: dict[str, dict[str, float]] = {}
    runs = iter(range(10**6))

    steady: list[float] = []

    def idle(n: int, **kw: Any) -> float:
        cfg = SearchConfig.from_space(space, experiment=f"run{next(runs)}", trials=n,
                                      progress=False, results_root=root / "results",
                                      pruner="none", sampler="random", sampler_seed=0, **kw)
        start = time.perf_counter()
        result = run_search(cfg)
        wall = time.perf_counter() - start
        assert result.counts["done"] == n, result.counts
        records = list(cfg.store.records())
        between = steady_ray_overhead(records)
        if between is not None and n > small:
            steady.append(between)
        return wall - train_seconds(records)

    def timed(name: str, n: int, small: int, reps: int, **kw: Any) -> None:
        steady.clear()
        b = min(idle(n, **kw) for _ in range(reps))
        row: dict[str, Any] = {"steady": min(steady) if steady else None, "trials": n}
        if not small:  # every trial pays the fixed part again (a fresh actor): no split
            out[name] = {**row, "per_trial": b / n, "fixed": None, "amortized": b / n}
            return
        a = min(idle(small, **kw) for _ in range(reps))
        per_trial = max(0.0, (b - a) / (n - small))
        out[name] = {**row, "per_trial": per_trial, "fixed": a - small * per_trial,
                     "amortized": b / n}

    small = max(2, trials // 4)
    idle(2)  # imports, first torch calls: not per-trial costs
    timed("local", trials, small, repeats)
    sqlite = root / "results" / "local_sqlite.db"  # one study per run: names differ
    timed("local_sqlite", trials, small, repeats, storage=f"sqlite:///{sqlite}")
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=_runtime_env())
    out["ray_start"] = {"fixed": time.perf_counter() - start}
    try:
        timed("ray_reuse_on", trials, small, ray_repeats, runner="ray",
              ray=RayOptions(max_concurrent=1, reuse_actors=True, scheduler="none"))
        timed("ray_reuse_off", 4, 0, 1, runner="ray",  # seconds per trial: few trials
              ray=RayOptions(max_concurrent=1, reuse_actors=False, scheduler="none"))
    finally:
        ray.shutdown()
    return out


def efficiency(root: Path, budget: float, epochs: int | None) -> dict[str, Any]:
    """Grid (local) against ASHA+TPE (Ray) on the CIFAR-style space over digits."""
    import ray

    from resbench.search.ray_runner import _runtime_env

    space = load_space(REPO / "specs" / "spaces" / "cifar_small.yaml")
    if epochs is not None:  # --quick: fewer epochs per trial
        data = dict(space.template)
        data["recipe"] = {**data["recipe"], "epochs": epochs}
        from resbench.spec.space import parse_space

        space = parse_space({**data, "search": {}}, file=space.file)
    size = space.grid_size()
    common = {"progress": False, "results_root": root / "results", "sampler_seed": 0}
    grid = SearchConfig.from_space(space, experiment="grid", trials=size, sampler="grid",
                                   pruner="none", **common)
    start = time.perf_counter()
    run_search(grid)
    grid_wall = time.perf_counter() - start
    grid_records = [r for r in grid.store.records() if r.status == "completed"]
    grid_best = max(r.metrics.best_val_acc for r in grid_records)
    grid_epochs = sum(len(r.curves) for r in grid_records)
    grid_seconds = sum(r.metrics.total_time_s for r in grid_records)

    trials = max(2, round(size * budget))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=_runtime_env())
    try:
        asha = SearchConfig.from_space(space, experiment="asha_tpe", trials=trials,
                                       sampler="tpe", runner="ray",
                                       ray=RayOptions(scheduler="asha"), **common)
        start = time.perf_counter()
        run_search(asha)
        asha_wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    records = sorted((r for r in asha.store.records() if r.curves),
                     key=lambda r: r.search.ray.finished)
    target = grid_best - 0.01
    used_epochs = used_seconds = 0.0
    reached = None
    best = 0.0
    for r in records:
        used_epochs += len(r.curves)
        used_seconds += sum(c.epoch_time_s for c in r.curves)
        best = max(best, r.metrics.best_val_acc or 0.0)
        if best >= target:
            reached = {"epochs": used_epochs, "seconds": used_seconds}
            break
    return {
        "grid_points": size, "grid_best_val_acc": grid_best, "grid_epochs": grid_epochs,
        "grid_train_s": grid_seconds, "grid_wall_s": grid_wall,
        "asha_trials": trials, "asha_best_val_acc": max((r.metrics.best_val_acc or 0.0)
                                                        for r in records),
        "asha_epochs_total": sum(len(r.curves) for r in records),
        "asha_pruned": sum(r.status == "pruned" for r in records), "asha_wall_s": asha_wall,
        "reached_within_1pt": reached is not None,
        "epochs_to_target": reached["epochs"] if reached else None,
        "share_of_grid_epochs": reached["epochs"] / grid_epochs if reached else None,
        "share_of_grid_train_s": reached["seconds"] / grid_seconds if reached else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32,
                        help="trivial trials in the larger search of each runner (the smaller "
                             "has a quarter)")
    parser.add_argument("--budget", type=float, default=0.5,
                        help="ASHA+TPE trials as a share of the grid's points")
    parser.add_argument("--quick", action="store_true", help="3 epochs per trial, 6 trials")
    parser.add_argument("--repeats", type=int, default=3,
                        help="local searches per size; the fastest counts (default 3)")
    parser.add_argument("--ray-repeats", type=int, default=2,
                        help="Ray searches per size; the fastest counts (default 2)")
    parser.add_argument("--overhead-only", action="store_true",
                        help="measure the per-trial overhead only (not the search efficiency)")
    parser.add_argument("--keep", help="keep the results here (default: a temp dir)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (driver)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_search_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        trials = 6 if args.quick else args.trials
        o = overhead(root, trials, args.repeats, args.ray_repeats)
        print("non-training seconds of trivial trials, one at a time: per trial (slope between "
              "search sizes), fixed per search, all over the trials of the larger search, and "
              "(Ray) per trial from the records' clocks between the first and last trial")
        print(f"  {'runner':34} {'per trial':>9} {'fixed':>7} {'amortized':>9} {'steady':>7}"
              "  trials")
        rows = [("local (Optuna, journal file)", "local", "<= 0.05"),
                ("local (Optuna, SQLite file)", "local_sqlite", ""),
                ("ray, actors reused", "ray_reuse_on", "<= 0.1"),
                ("ray, fresh actor per trial", "ray_reuse_off", "")]
        for label, name, target in rows:
            r = o[name]
            fixed = "-" if r["fixed"] is None else f"{r['fixed']:.2f}"
            steady = "-" if r.get("steady") is None else f"{r['steady']:.3f}"
            print(f"  {label:34} {r['per_trial']:9.3f} {fixed:>7} {r['amortized']:9.3f} "
                  f"{steady:>7}  {r['trials']}"
                  f"{'   target per trial ' + target if target else ''}")
        ratio = lambda a, b: o[a]["per_trial"] / max(o[b]["per_trial"], 1e-9)  # noqa: E731
        print(f"  per-trial ratio SQLite/journal (the earlier default/today's): "
              f"{ratio('local_sqlite', 'local'):.1f}x")
        print(f"  per-trial ratio ray(fresh)/ray(reuse): {ratio('ray_reuse_off', 'ray_reuse_on'):.1f}x")
        print(f"  (ray cluster start-up, once: {o['ray_start']['fixed']:.1f} s)")
        if args.overhead_only:
            return
        e = efficiency(root, args.budget, 3 if args.quick else None)
        print(f"search efficiency on cifar_small over digits ({e['grid_points']} grid points):")
        print(f"  grid: best val_acc {e['grid_best_val_acc']:.4f}, {e['grid_epochs']} epochs, "
              f"{e['grid_train_s']:.1f} s training, {e['grid_wall_s']:.1f} s wall")
        print(f"  ASHA+TPE: {e['asha_trials']} trials, {e['asha_pruned']} stopped early, "
              f"best val_acc {e['asha_best_val_acc']:.4f}, {e['asha_epochs_total']} epochs, "
              f"{e['asha_wall_s']:.1f} s wall")
        if e["reached_within_1pt"]:
            print(f"  within 1 point of the grid's best after {e['epochs_to_target']:.0f} epochs: "
                  f"{e['share_of_grid_epochs']:.2f} of the grid's epochs, "
                  f"{e['share_of_grid_train_s']:.2f} of its training seconds")
        else:
            print("  ASHA+TPE did not come within 1 point of the grid's best in its budget")
        if args.keep:
            (root / "bench_search.json").write_text(json.dumps({"overhead": o, "efficiency": e},
                                                               indent=1))
            print(f"figures and results kept in {root}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
