"""The ``resbench`` command: wiring only; each subcommand's work lives in its own package."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from resbench import cli_types
from resbench.errors import UserError

# Subcommands implemented elsewhere: name -> (module with add_arguments/run, one-line help).
DELEGATED = {
    "bench": ("resbench.train.cli", "train and measure a suite or a spec; results go to results/"),
    "search": ("resbench.search.cli", "search a space of specs with Optuna or Ray Tune"),
    "report": ("resbench.report.cli", "write a comparison report from results folders"),
}


def _validate(args: argparse.Namespace) -> int:
    from resbench.spec import load_spec
    from resbench.spec.load import iter_spec_files

    failures = 0
    paths = iter_spec_files(args.specs)
    if not paths:
        raise UserError("no spec files (*.yaml, *.yml, *.json) in "
                        f"{', '.join(map(str, args.specs))}")
    for path in paths:
        try:
            spec = load_spec(path)
        except UserError as exc:
            failures += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        fields = spec.summary_fields()
        print(f"ok  {path}  ({spec.name}: {spec.depth} layers, {fields['block']} blocks, "
              f"{fields['shortcut']} shortcuts, widths {fields['widths']}, depths {fields['depths']})")
    if failures:
        print(f"{failures} invalid spec file{'s' if failures > 1 else ''}", file=sys.stderr)
    return 2 if failures else 0


def _show(args: argparse.Namespace) -> int:
    from resbench import memory
    from resbench.compile import cost
    from resbench.spec import load_spec

    spec = load_spec(args.spec)
    c = cost(spec, input_size=args.input_size)
    memory.check(memory.inference(c.params, c.activation_bytes), name=f"spec {spec.name!r}")
    rows = [(s.name, str(s.blocks), "x".join(map(str, s.output_shape[1:])), f"{s.params:,}",
             f"{s.macs / 1e6:,.1f}", f"{s.activation_bytes / 2**20:,.2f}") for s in c.stages]
    rows.append(("total", str(sum(s.depth for s in spec.stages)), "", f"{c.params:,}",
                 f"{c.macs / 1e6:,.1f}", f"{c.activation_bytes / 2**20:,.2f}"))
    header = ("stage", "blocks", "output (CxHxW)", "params", "MMACs", "act. MiB")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    fields = spec.summary_fields()
    print(f"{spec.name}: {spec.depth} layers, {fields['block']} blocks, {fields['shortcut']} "
          f"shortcuts, input {spec.input_channels}x{c.input_size}x{c.input_size}, "
          f"{spec.num_classes} classes")
    for i, row in enumerate((header, *rows)):
        if i == len(rows):  # separate the totals
            print("  ".join("-" * w for w in widths))
        print("  ".join(cell.rjust(w) if j else cell.ljust(w) for j, (cell, w)
                        in enumerate(zip(row, widths))))
    print(f"MACs are multiply-accumulates at batch 1; FLOPs = 2 x MACs = {2 * c.macs / 1e9:.2f} G.")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from resbench.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = cli_types.ArgumentParser(
        prog="resbench",
        description="Residual networks as data: validate, build, train, search and compare specs.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check spec files (directories are searched)",
                       description="Validate spec files; exit 2 if any is invalid.")
    p.add_argument("specs", nargs="+", type=lambda text: Path(cli_types.path_text(text)),
                   metavar="SPEC")
    p.set_defaults(func=_validate)

    p = sub.add_parser("show", help="per-stage table of blocks, shapes, params and MACs",
                       description="Print a spec's stages with output shape, params and MACs.")
    p.add_argument("spec", type=lambda text: Path(cli_types.path_text(text)), metavar="SPEC")
    p.add_argument("--input-size", type=cli_types.input_size, default=None,
                   help="input resolution (default: the spec's input_size)")
    p.set_defaults(func=_show)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language",
                       description="Print the JSON Schema of spec files, for editors.")
    p.set_defaults(func=_schema)

    for name, (module, help_text) in DELEGATED.items():
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        mod = importlib.import_module(module)
        mod.add_arguments(p)
        p.set_defaults(func=mod.run)
    return parser


def _version() -> str:
    from resbench import __version__

    return f"resbench {__version__}"


INTERRUPTED = 130  # the shell's code for a Ctrl-C


def run_command(command: Callable[[argparse.Namespace], int | None],
                args: argparse.Namespace) -> int:
    """The one policy behind every entry point (``resbench``, its subcommands, ``run_bench.py``).

    Process-wide settings are applied here, once (``--threads``); a ``UserError`` prints
    ``error: <message>`` without a traceback and exits 2; Ctrl-C keeps what is finished and
    exits 130; a closed output pipe (``resbench validate specs | head``) exits 0.
    """
    try:
        if getattr(args, "threads", None) is not None:
            from resbench.train.threads import set_threads

            set_threads(args.threads)
        return int(command(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
