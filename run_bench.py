#!/usr/bin/env python
"""Run a benchmark suite and write its report: ``python run_bench.py [SUITE_OR_SPEC] [options]``.

With no argument it runs ``specs/suites/degradation.yaml`` (the degradation experiment of
He et al. at small scale), prints the leaderboard and writes the report into
``results/<experiment>/report/``. Finished trials are skipped, so a rerun resumes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from resbench.cli import run_command  # noqa: E402
from resbench.cli_types import ArgumentParser  # noqa: E402
from resbench.train import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="run_bench.py", description=__doc__.splitlines()[0])
    cli.add_arguments(parser)
    parser.add_argument("--no-report", action="store_true", help="do not write the report")
    return run_command(bench_and_report, parser.parse_args(argv))


def bench_and_report(args: argparse.Namespace) -> int:
    """``resbench bench``, then the suite's report unless ``--no-report``."""
    code = cli.run(args)
    if code == 0 and not args.no_report:
        write_report(args)
    return code


def write_report(args: argparse.Namespace) -> None:
    """The suite's report, next to its results."""
    from resbench.report import make_report
    from resbench.store import experiment_dir, writing
    from resbench.train.suite import load_target

    folder = experiment_dir(args.experiment or load_target(cli.target_path(args)).name,
                            args.results)
    with writing(folder / "report"):  # a read-only results folder: one error naming it
        result = make_report([folder], folder / "report")
    print(f"report: {result.markdown} and {result.html}")


if __name__ == "__main__":
    sys.exit(main())
