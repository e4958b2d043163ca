"""``resbench bench [SUITE_OR_SPEC]``: run a suite (or one spec) and print its leaderboard."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resbench import cli_types
from resbench.errors import UserError
from resbench.spec.library import library_root, resolve
from resbench.spec.recipe import SET_FLAG, merge_layers, set_layer

if TYPE_CHECKING:
    from resbench.store import TrialRecord

DEFAULT_SUITE = library_root() / "suites" / "degradation.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``resbench bench`` and ``run_bench.py``."""
    parser.add_argument("target", nargs="?", default=None, metavar="SUITE_OR_SPEC",
                        type=cli_types.path_text,
                        help="a suite or spec file (a spec runs as a one-spec suite), or a "
                             "library name such as degradation or resnet20 (resbench list); "
                             "default: degradation")
    parser.add_argument("--results", default="results", metavar="DIR", type=cli_types.results_root,
                        help="root folder of experiments (default: results)")
    parser.add_argument("--experiment", default=None, metavar="NAME", type=cli_types.name,
                        help="experiment folder under --results (default: the suite's name)")
    parser.add_argument("--epochs", type=cli_types.positive, default=None, metavar="N",
                        help="override epochs")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        dest="set", help="override a recipe field, e.g. --set recipe.epochs=5 "
                        "--set recipe.optimizer.lr=0.05 (YAML values; repeatable; wins over "
                        "the other flags)")
    parser.add_argument("--batch-size", type=cli_types.positive, default=None, metavar="N",
                        help="override the batch size")
    parser.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    parser.add_argument("--seeds", type=cli_types.seed32, nargs="+", default=None, metavar="SEED",
                        help="run these seeds instead of the suite's")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="override the device")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="override the precision")
    parser.add_argument("--limit", type=cli_types.positive, default=None, metavar="N",
                        help="train on at most N examples (quick checks)")
    parser.add_argument("--threads", type=cli_types.threads, default=0, metavar="N",
                        help="CPU threads for torch (default 0: torch's default, one per core; "
                             "use 1 when other jobs share the cores, which slows the small nets "
                             "of a suite badly)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run failed trials again instead of skipping them")
    parser.add_argument("--max-attempts", type=int, default=2, metavar="N",
                        help="record a trial failed ('killed, likely out of memory') after N "
                             "runs of it were killed before writing a record (default: 2)")
    parser.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                        help="progress display (default: bars on a terminal, log lines otherwise)")


def target_path(args: argparse.Namespace) -> Path:
    """The suite or spec file ``args.target`` names (a path or a library name)."""
    target = resolve(args.target, ("suite", "spec")) if args.target else DEFAULT_SUITE
    if not target.is_file():
        raise UserError(f"{target}: no such suite or spec file")
    return target


def flags_layer(args: argparse.Namespace) -> dict[str, Any]:
    """The command-line flags as the highest recipe layer."""
    layer: dict[str, Any] = {}
    for name in ("epochs", "batch_size", "device", "precision"):
        value = getattr(args, name)
        if value is not None:
            layer[name] = value
    if args.lr is not None:
        layer["optimizer"] = {"lr": args.lr}
    if args.limit is not None:
        layer["data"] = {"limit": args.limit}
    return merge_layers(layer, set_layer(getattr(args, "set", None)), file=SET_FLAG)


def run(args: argparse.Namespace) -> int:
    """Run the suite, print the leaderboard; bad input raises UserError (the caller exits 2).

    ``--threads`` is applied by the entry point (``resbench.cli.run_command``), not here."""
    from resbench.train.suite import load_target, run_suite

    suite = load_target(target_path(args))
    result = run_suite(suite, results_root=args.results, experiment=args.experiment,
                       flags=flags_layer(args), seeds=tuple(args.seeds) if args.seeds else None,
                       progress=args.progress, retry_failed=args.retry_failed,
                       max_attempts=args.max_attempts)
    print(f"\n{result.experiment_dir.name}: {result.ran} trial(s) run, {result.skipped} already "
          "finished (or run by another process); "
          f"results in {result.experiment_dir}")
    print(leaderboard(result.records))
    return 0


TERMINAL_COLUMNS = ("experiment", "spec", "recipe", "shortcut", "depth", "seeds",
                    "final train loss", "train error (%)", "final val acc (%)",
                    "best val acc (%)", "params (M)", "MACs (M)", "throughput (img/s)", "status")
"""The report's leaderboard columns ``resbench bench`` prints (see resbench.report.sections)."""


def leaderboard(records: Sequence[TrialRecord]) -> str:
    """The report's leaderboard of these records (same rows, same order: best validation
    accuracy first, means ± std over completed seeds), as a table for the terminal."""
    if not records:
        return "(no trials)"
    from resbench.report import render, sections, tables
    from resbench.store import records_frame

    board = tables.leaderboard(tables.prepare(records_frame(records)))
    several = len({r.experiment for r in records}) > 1
    return render.text_table(sections.leaderboard_cells(board, TERMINAL_COLUMNS,
                                                        several_experiments=several))
