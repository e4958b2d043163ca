"""Population benchmark: models per minute for a complexity-band population on ``digits``.

Draws ``--n`` models (default 200) uniformly from a space of CIFAR-style ResNets, keeping only
those whose MACs (``resbench.cost`` of the spec fitted to digits) lie in ``--macs LO:HI``, as
pycls samples a design space at equal cost; then trains each for one epoch through the local
runner with ``--workers`` processes (default 2, one torch thread each), twice:

  with reuse     the local runner as it is: each worker loads the data set once (DataCache)
                 and tells a journal-file study;
  without reuse  the same trials in as many processes, the same ask / train / record / tell
                 steps without that reuse: the data set loaded for each trial and a SQLite
                 study (the earlier default storage). (cost() is memoised by block, so the
                 count run_trial makes beside the candidate's is a lookup in both arms.)

Both arms train the same points (enqueued into each arm's study) with the same seeds, and the
benchmark prints models per minute for each and their ratio. Run:

    python benchmarks/bench_population.py [--n 200] [--macs 3M:4.5M] [--workers 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resbench.search import SearchConfig, run_search  # noqa: E402
from resbench.search.candidate import make_candidate  # noqa: E402
from resbench.search.config import JOURNAL_FILE  # noqa: E402
from resbench.spec.space import parse_space  # noqa: E402
from resbench.store import Store  # noqa: E402
from resbench.train.datacache import DataCache  # noqa: E402

SPACE = {
    "name": "population", "stem": {"kind": "cifar", "width": 8}, "block": "basic",
    "shortcut": {"$choice": ["zero_pad", "projection"]},
    "stages": [{"depth": {"$int": [1, 4]}, "width": {"$choice": [8, 12, 16]}, "stride": 1},
               {"depth": {"$int": [1, 4]}, "width": {"$choice": [16, 24, 32]}, "stride": 2},
               {"depth": {"$int": [1, 3]}, "width": {"$choice": [32, 48, 64]}, "stride": 2}],
    "recipe": {"epochs": 1, "batch_size": 128, "grad_probe_steps": [], "latency_batch": 8,
               "optimizer": {"name": "sgd", "lr": {"$float": [0.01, 0.3], "log": True}},
               "data": {"name": "digits"}},
    "search": {"objectives": "val_acc", "sampler": "random", "pruner": "none"},
}


def parse_band(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    if not sep:
        raise SystemExit(f"--macs wants LO:HI (e.g. 3M:4.5M), got {text!r}")
    return _count(lo), _count(hi)


def _count(text: str) -> int:
    scale = {"K": 10**3, "M": 10**6, "G": 10**9}.get(text[-1:].upper(), 1)
    return int(float(text[:-1] if scale != 1 else text) * scale)


def draw_band(config: SearchConfig, n: int, band: tuple[int, int],
              seed: int) -> tuple[list[dict[str, Any]], int, float]:
    """``n`` distinct points whose MACs lie in ``band``: Optuna-level params (to enqueue), the
    number of candidates drawn, and the seconds spent drawing and costing them."""
    import optuna

    from resbench.search.optuna_study import TrialSampler

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    cache = DataCache()
    keep: list[dict[str, Any]] = []
    keys: set[str] = set()
    drawn = 0
    start = time.perf_counter()
    while len(keep) < n:
        trial = study.ask()
        spec, recipe, params = config.space.sample(TrialSampler(trial))
        cand = make_candidate(config, spec, recipe, params, cache)
        drawn += 1
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        if band[0] <= cand.cost["macs"] <= band[1] and cand.key not in keys:
            keys.add(cand.key)
            keep.append(dict(trial.params))
        if drawn > 200 * n:
            raise SystemExit(f"only {len(keep)} of {drawn} candidates fall in the band; widen it")
    return keep, drawn, time.perf_counter() - start


def enqueue(config: SearchConfig, points: list[dict[str, Any]]) -> None:
    """Create the arm's study (as the runner would) and queue the population into it."""
    from resbench.search.optuna_study import open_study

    config.path.mkdir(parents=True, exist_ok=True)
    study = open_study(config)
    for params in points:
        study.enqueue_trial(params)


# ----- without reuse: the per-trial work the runner did before --------------------------------

def _naive_worker(config: SearchConfig) -> None:
    """Ask, evaluate, tell, as ``search.local.worker`` does, but loading the data set for each
    trial.

    On SQLite two workers can pop the same queued trial (its row lock is a no-op there): both
    train it and the second one's tell fails. That is what the SQLite path does, so it is
    counted (``raced``) and the worker goes on; the record is the same either way."""
    from optuna.exceptions import UpdateFinishedTrialError

    from resbench._compat.optuna import quiet
    from resbench.search.local import RUNNER, ask_within_budget, tell
    from resbench.search.candidate import search_info
    from resbench.search.optuna_study import TrialSampler, open_study
    from resbench.train.threads import set_threads
    from resbench.train.trial import run_trial

    set_threads(1)
    with quiet():
        study = open_study(config)
        store = config.store
        while (trial := ask_within_budget(study, config.trials)) is not None:
            try:
                spec, recipe, params = config.space.sample(TrialSampler(trial))
                cand = make_candidate(config, spec, recipe, params, DataCache())  # loads data
                for name, value in (("params", params), ("key", cand.key),
                                    ("worker", os.getpid())):
                    trial.set_user_attr(name, value)
                record = run_trial(cand.spec, cand.recipe, cand.seed, data=cand.data,
                                   experiment=config.experiment)
                record.search = search_info(RUNNER, config, trial.number, params,
                                            worker=os.getpid())
                store.write_record(record)
                tell(config, study, trial, record)
            except UpdateFinishedTrialError:
                print(f"raced: trial {trial.number} was taken by both workers", flush=True)


def run_naive(config: SearchConfig) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_naive_worker, args=(config,)) for _ in range(config.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise SystemExit(f"naive workers failed: exit codes {bad}")


def arm_configs(space: Any, root: Path, chunk: int, size: int,
                workers: int) -> dict[str, SearchConfig]:
    """The two arms' configs for one round (each round is its own pair of experiments)."""
    common = {"trials": size, "workers": workers, "progress": False,
              "results_root": root / "results"}
    without = f"without_reuse_{chunk}"
    sqlite = f"sqlite:///{(root / 'results' / without / 'study.db').resolve()}"
    return {"with reuse": SearchConfig.from_space(space, experiment=f"with_reuse_{chunk}",
                                                  **common),
            "without reuse": SearchConfig.from_space(space, experiment=without, storage=sqlite,
                                                     **common)}


def run_arm(name: str, cfg: SearchConfig,
            points: list[dict[str, Any]]) -> tuple[float, float]:
    """Train ``points`` in one arm: (wall seconds, seconds inside run_trial)."""
    enqueue(cfg, points)
    start = time.perf_counter()
    if name == "with reuse":
        from dataclasses import replace

        run_search(replace(cfg, resume=True))  # the queued population, through the runner
        assert (cfg.path / JOURNAL_FILE).is_file()
    else:
        run_naive(cfg)
    wall = time.perf_counter() - start
    done = [r for r in Store(cfg.path).records() if r.status == "completed"]
    assert len(done) == len(points), (name, len(done))
    return wall, sum(r.metrics.total_time_s for r in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="models in the population")
    parser.add_argument("--macs", default="3M:4.5M", help="the complexity band, LO:HI")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the population is trained in this many chunks, each by both "
                        "arms in alternating order, so that load from other processes on "
                        "the machine falls on both alike (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the population draw")
    parser.add_argument("--keep", help="keep the results here (default: a temp dir)")
    args = parser.parse_args()
    band = parse_band(args.macs)
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_population_"))
    space = parse_space(SPACE, file="bench_population")
    try:
        probe = arm_configs(space, root, 0, args.n, args.workers)["with reuse"]
        points, drawn, seconds = draw_band(probe, args.n, band, args.seed)
        print(f"population: {args.n} models with MACs in [{band[0]:,}, {band[1]:,}] on digits, "
              f"kept from {drawn} uniform draws ({drawn / seconds:.1f} candidates/s costed), "
              f"1 epoch each, {args.workers} workers, {args.rounds} rounds")
        wall = {"with reuse": 0.0, "without reuse": 0.0}
        inside = dict(wall)
        rounds = max(1, min(args.rounds, args.n))
        for i in range(rounds):
            chunk = points[i * args.n // rounds:(i + 1) * args.n // rounds]
            configs = arm_configs(space, root, i, len(chunk), args.workers)
            order = list(configs) if i % 2 == 0 else list(reversed(configs))
            for name in order:
                w, t = run_arm(name, configs[name], chunk)
                wall[name] += w
                inside[name] += t
        rate = {name: args.n / wall[name] * 60 for name in wall}
        for name in wall:
            print(f"  {name:14} {rate[name]:7.1f} models/min  ({wall[name]:.1f} s wall, "
                  f"{inside[name]:.1f} s inside run_trial, summed over the workers)")
        print(f"  ratio with/without reuse: {rate['with reuse'] / rate['without reuse']:.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
