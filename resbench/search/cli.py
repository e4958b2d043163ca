"""``resbench search SPACE.yaml``: wiring from flags to a SearchConfig and a runner."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from resbench import cli_types
from resbench.search.config import SCHEDULERS, RayOptions, SearchConfig
from resbench.search.objectives import OBJECTIVES, parse_objectives
from resbench.spec.library import resolve
from resbench.spec.recipe import SET_FLAG, merge_layers, parse_recipe, set_layer
from resbench.spec.space import PRUNERS, SAMPLERS, load_space, positive_int, split_objectives


CLUSTER_HELP = """\
Ray cluster (--runner ray --address ...):
  on the head machine:   ray start --head --port=6379 [--num-cpus=N] [--num-gpus=G]
  on each worker:        ray start --address=HEAD_IP:6379 [--num-gpus=G]
  then, on any node:     resbench search SPACE --runner ray --address HEAD_IP:6379
                         (--address auto on a node of a running cluster)
Every node needs resbench, its data and any transfer checkpoints at the same paths. Final
records are written by the trials (a shared results folder is best) and again by this driver
from the trials' reports. Without --address a local cluster starts in-process and stops at
the end. ray stop ends a node.
--resume continues the experiment's search after the driver was killed: finished trials are
kept (and never trained again), running ones continue from their last epoch checkpoint."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``search`` subcommand's flags (defaults come from the space's ``search:`` section)."""
    parser.epilog = CLUSTER_HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("space", type=cli_types.path_text, help="search-space file (YAML/JSON), "
                        "or a library name such as cifar_small (resbench list)")
    parser.add_argument("--runner", choices=("local", "ray"), default="local",
                        help="local: Optuna on this machine (default); ray: Ray Tune")
    parser.add_argument("--trials", type=cli_types.positive,
                        help="number of trials, infeasible and reused "
                        "ones included (default: the space's search.trials)")
    parser.add_argument("--objective", type=cli_types.name,
                        help=f"objective(s), comma-separated, from "
                        f"{', '.join(OBJECTIVES)}; several give a multi-objective (Pareto) search")
    parser.add_argument("--experiment", type=cli_types.name,
                        help="results/<experiment>/ (default: the space's name)")
    parser.add_argument("--results", default="results", type=cli_types.results_root,
                        help="results root (default: results)")
    parser.add_argument("--sampler", choices=SAMPLERS, help="default: tpe, nsga2 for several objectives")
    parser.add_argument("--pruner", choices=PRUNERS, help="local runner's pruner (default: median; "
                        "none for several objectives, which Optuna cannot prune)")
    parser.add_argument("--scheduler", choices=SCHEDULERS, default="asha",
                        help="ray runner's trial scheduler (default: asha)")
    parser.add_argument("--seed", type=cli_types.seed32, help="training seed of every trial")
    parser.add_argument("--sampler-seed", type=cli_types.seed32, help="seed of the sampler")
    parser.add_argument("--max-params", help="reject samples with more parameters, untrained")
    parser.add_argument("--max-macs", help="reject samples with more MACs, untrained")
    parser.add_argument("--storage", type=cli_types.storage,
                        help="Optuna RDB URL, or a journal file path ending in .journal (default: "
                        "study.journal in the experiment folder; study.db where one exists)")
    parser.add_argument("--workers", type=cli_types.workers, default=1,
                        help="local runner: worker processes sharing the study")
    parser.add_argument("--retries", type=cli_types.retries, default=1,
                        help="extra attempts for a trial that raises or runs out of memory")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted search of the same experiment")
    parser.add_argument("--join", action="store_true",
                        help="local runner: add this machine's workers to a search running "
                        "elsewhere on the same --storage (its running trials are left alone)")
    parser.add_argument("--address", help="ray runner: attach to this cluster (e.g. auto or "
                        "HOST:6379); without it a local cluster starts in-process")
    parser.add_argument("--cpus-per-trial", type=cli_types.share, default=1.0)
    parser.add_argument("--gpus-per-trial", type=cli_types.share, default=0.0,
                        help="fractions share a GPU, e.g. 0.5")
    parser.add_argument("--max-concurrent", type=cli_types.positive,
                        help="ray runner: trials at once")
    parser.add_argument("--no-reuse-actors", action="store_true",
                        help="ray runner: start a fresh worker process per trial")
    parser.add_argument("--epochs", type=int, metavar="N", help="train every trial for N "
                        "epochs (overrides the space's recipe.epochs)")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="override a recipe field of every trial, e.g. --set "
                        "recipe.optimizer.lr=0.05 (YAML values; repeatable; wins over --epochs)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch in this process (default: torch's, one per "
                        "core; --workers N processes share the cores instead)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Flags given on the command line override the space's ``search:`` section."""
    space = load_space(resolve(args.space, ("space",)))
    given: dict[str, Any] = {}
    if args.objective is not None:
        given["objectives"] = parse_objectives(split_objectives(args.objective, path="--objective"),
                                               path="--objective")
    for flag, name in (("trials", "trials"), ("experiment", "experiment"), ("sampler", "sampler"),
                       ("pruner", "pruner"), ("seed", "seed"), ("sampler_seed", "sampler_seed"),
                       ("storage", "storage")):
        if getattr(args, flag) is not None:
            given[name] = getattr(args, flag)
    for flag in ("max_params", "max_macs"):
        if getattr(args, flag) is not None:
            given[flag] = positive_int(getattr(args, flag), path="--" + flag.replace("_", "-"))
    overrides = merge_layers({"epochs": args.epochs} if args.epochs is not None else {},
                             set_layer(args.set), file=SET_FLAG)
    if overrides:
        parse_recipe(overrides, file=SET_FLAG)
        given["recipe_overrides"] = overrides
    return SearchConfig.from_space(
        space, runner=args.runner, results_root=Path(args.results), workers=args.workers,
        retries=args.retries, resume=args.resume, join=args.join, progress=not args.quiet,
        ray=RayOptions(address=args.address, cpus_per_trial=args.cpus_per_trial,
                       gpus_per_trial=args.gpus_per_trial, scheduler=args.scheduler,
                       reuse_actors=not args.no_reuse_actors,
                       max_concurrent=args.max_concurrent), **given)


def run(args: argparse.Namespace) -> int:
    from resbench.search import run_search

    config = config_from_args(args)  # a pruner with several objectives is refused there
    result = run_search(config)
    c = result.counts
    print(f"{config.experiment}: {c.get('done', 0)} trials in {result.seconds:.1f}s "
          f"({c.get('completed', 0)} completed, {c.get('pruned', 0)} pruned, "
          f"{c.get('infeasible', 0)} infeasible, {c.get('diverged', 0)} diverged, "
          f"{c.get('failed', 0)} failed, "
          f"{c.get('cached', 0)} reused) -> {result.path}")
    label = "pareto front" if config.multi_objective else "best"
    for row in result.best:
        values = ", ".join(f"{k}={v:.4g}" for k, v in row["values"].items())
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        print(f"  {label}: #{row['trial_number']} {values}  [{params}]")
    if not result.best:
        print("  no trial completed", file=sys.stderr)
    return 0
