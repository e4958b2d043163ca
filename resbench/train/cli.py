"""``resbench bench [SUITE_OR_SPEC]``: run a suite (or one spec) and print its leaderboard."""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from resbench.errors import UserError
from resbench.spec.library import library_root
from resbench.store import TrialRecord

DEFAULT_SUITE = library_root() / "suites" / "degradation.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``resbench bench`` and ``run_bench.py``."""
    parser.add_argument("target", nargs="?", default=None, metavar="SUITE_OR_SPEC",
                        help="a suite file, or a spec file run as a one-spec suite "
                             f"(default: {_shown(DEFAULT_SUITE)})")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="root folder of experiments (default: results)")
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help="experiment folder under --results (default: the suite's name)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N", help="override epochs")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="override the batch size")
    parser.add_argument("--lr", type=float, default=None, help="override the peak learning rate")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="SEED",
                        help="run these seeds instead of the suite's")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None,
                        help="override the device")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                        help="override the precision")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="train on at most N examples (quick checks)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads for torch (default 0: torch's default, one per core; "
                             "use 1 when other jobs share the cores, which slows the small nets "
                             "of a suite badly)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run failed trials again instead of skipping them")
    parser.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                        help="progress display (default: bars on a terminal, log lines otherwise)")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
    return layer


def run(args: argparse.Namespace) -> int:
    """Run the suite, print the leaderboard; bad input raises UserError (the caller exits 2)."""
    from resbench.train.suite import load_target, run_suite

    target = Path(args.target) if args.target else DEFAULT_SUITE
    if not target.exists():
        raise UserError(f"{target}: no such suite or spec file")
    suite = load_target(target)
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    result = run_suite(suite, results_root=args.results, experiment=args.experiment,
                       flags=flags_layer(args), seeds=tuple(args.seeds) if args.seeds else None,
                       progress=args.progress, retry_failed=args.retry_failed)
    print(f"\n{result.experiment_dir.name}: {result.ran} trial(s) run, {result.skipped} already finished; "
          f"results in {result.experiment_dir}")
    print(leaderboard(result.records))
    return 0


def leaderboard(records: Sequence[TrialRecord]) -> str:
    """One row per spec (and recipe override): means over seeds, best final training loss first."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        override = record.suite.override if record.suite else 0
        groups.setdefault((record.spec_name, override), []).append(record)

    def mean(rows: list[dict[str, Any]], metric: str) -> float:
        values = [r.metrics.get(metric) for r in rows if r.status == "completed"]
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else math.nan

    table = []
    for (name, override), rows in groups.items():
        summary = rows[0].summary
        statuses = sorted({r.status for r in rows})
        table.append({
            "spec": name + (f" [{override}]" if override else ""),
            "shortcut": summary.get("shortcut", ""), "depth": summary.get("depth", ""),
            "seeds": str(len(rows)),
            "train_loss": mean(rows, "final_train_loss"),
            "train_err%": 100 * (1 - mean(rows, "final_train_acc")),
            "val_acc%": 100 * mean(rows, "final_val_acc"),
            "params": mean(rows, "params"), "MMACs": mean(rows, "macs") / 1e6,
            "img/s": mean(rows, "images_per_s"), "time_s": mean(rows, "total_time_s"),
            "status": ",".join(statuses),
        })
    table.sort(key=lambda r: (math.isnan(r["train_loss"]), r["train_loss"]))
    return _format(table)


def _format(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)"
    digits = {"train_loss": 4, "train_err%": 2, "val_acc%": 2, "params": 0, "MMACs": 2,
              "img/s": 0, "time_s": 1}

    def cell(key: str, value: Any) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:,.{digits.get(key, 3)}f}"
        return str(value)

    header = list(rows[0])
    cells = [[cell(k, r[k]) for k in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for c in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point (``python -m resbench.train.cli``)."""
    parser = argparse.ArgumentParser(prog="resbench bench", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
