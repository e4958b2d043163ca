"""``resbench report RESULTS_DIR... -o OUT_DIR``: the command-line face of ``make_report``."""
from __future__ import annotations

import argparse

from resbench import cli_types
from resbench.report import GROUP_BY_DEFAULTS, PARETO_X, make_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``report`` subcommand's arguments on ``parser``."""
    parser.add_argument("results_dirs", nargs="+", metavar="RESULTS_DIR", type=cli_types.path_text,
                        help="experiment folders (results/<experiment>) or results roots "
                             "holding several; all are compared in one report")
    parser.add_argument("-o", "--out", required=True, metavar="OUT_DIR",
                        type=cli_types.results_root,
                        help="folder for report.md, report.html, figures/*.png and the CSVs")
    parser.add_argument("--group-by", default=None, metavar="FIELD",
                        help="trial column that colours the training curves and Pareto points "
                             f"(default: first varying of {', '.join(GROUP_BY_DEFAULTS)})")
    parser.add_argument("--pareto-x", default="macs", choices=PARETO_X,
                        help="cost axis of the Pareto front (default: macs)")


def run(args: argparse.Namespace) -> int:
    """Write the report and print where its files are; UserErrors reach the CLI's handler."""
    result = make_report(args.results_dirs, args.out, group_by=args.group_by,
                         pareto_x=args.pareto_x)
    missing = [s.title for s in result.sections if s.unavailable]
    print(f"wrote {result.html}")
    print(f"wrote {result.markdown}")
    print(f"wrote {result.leaderboard_csv} and {result.ablations_csv}")
    print(f"wrote {len(result.figures)} figures in {result.out_dir / 'figures'}")
    if missing:
        print(f"sections without data: {', '.join(missing)}")
    return 0
