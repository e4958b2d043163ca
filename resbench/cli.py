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
    "sample": ("resbench.search.sample_cli", "draw a complexity-band population from a space, "
               "as a suite or trained at once"),
    "report": ("resbench.report.cli", "write a comparison report from results folders"),
    "analyze": ("resbench.train.analyze",
                "add analyses (lesion, signal, shatter, landscape) to finished trials, no retraining"),
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


def _list(args: argparse.Namespace) -> int:
    from resbench.compile import cost
    from resbench.errors import unknown
    from resbench.spec import load_spec
    from resbench.spec.library import library_files, list_names

    files = library_files()
    names = list_names(args.pattern)
    if not names:
        raise unknown("library spec (glob)", args.pattern,
                      sorted({n.rsplit("/", 1)[-1] for n in files}))
    header = ("name", "family", "params", "MACs", "input", "description")
    rows = []
    for name in names:
        spec = load_spec(files[name])
        c = cost(spec)
        family, short = name.rsplit("/", 1)
        rows.append((short, family, _si(c.params), _si(c.macs),
                     f"{spec.input_channels}x{c.input_size}x{c.input_size}",
                     spec.description.strip().splitlines()[0] if spec.description else ""))
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [c.rjust(w) if i in (2, 3) else c.ljust(w) for i, (c, w) in
                 enumerate(zip(row, widths))]
        print("  ".join(cells) + "  " + row[-1])
    if args.pattern == "*":
        for kind, command in (("suite", "resbench bench NAME"), ("space", "resbench search NAME")):
            shown = ", ".join(n.rsplit("/", 1)[-1] for n in library_files(kind))
            print(f"{kind}s ({command}): {shown}")
    return 0


def _si(n: int) -> str:
    """``25557032`` -> ``25.56M``; MACs at batch 1."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _schema(args: argparse.Namespace) -> int:
    from resbench.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _store_check(args: argparse.Namespace) -> int:
    from resbench.store import check, move_aside

    problems = check(args.results)
    for problem in problems:
        print(problem)
    if problems and args.move_aside:
        for source, target in move_aside(problems):
            print(f"moved {source} -> {target}")
        print(f"{len(problems)} bad file(s) set aside; a rerun trains their trials again")
        return 0
    if problems:
        print(f"{len(problems)} bad file(s); --move-aside moves them to <experiment>/quarantine/",
              file=sys.stderr)
        return 1
    print("ok: no bad files")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = cli_types.ArgumentParser(
        prog="resbench",
        description="Residual networks as data: validate, build, train, search and compare specs.",
        epilog="Specs, suites and spaces are given as files or by their name in the library that "
               "ships with resbench (resbench list). Results go to ./results/<experiment>/ in "
               "the current folder by default (--results DIR on bench and search).")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check spec files (directories are searched)",
                       description="Validate spec files; exit 2 if any is invalid.")
    p.add_argument("specs", nargs="+", type=lambda text: Path(cli_types.path_text(text)),
                   metavar="SPEC")
    p.set_defaults(func=_validate)

    p = sub.add_parser("show", help="per-stage table of blocks, shapes, params and MACs",
                       description="Print a spec's stages with output shape, params and MACs.")
    p.add_argument("spec", type=cli_types.path_text, metavar="SPEC",
                   help="a spec file or a library name (resnet50)")
    p.add_argument("--input-size", type=cli_types.input_size, default=None,
                   help="input resolution (default: the spec's input_size)")
    p.set_defaults(func=_show)

    p = sub.add_parser("list", help="the spec library: name, family, params, MACs, description",
                       description="List the specs that ship with resbench (use a name wherever "
                       "a spec path goes: resbench show resnet50).")
    p.add_argument("pattern", nargs="?", default="*", metavar="GLOB",
                   help="names to list, e.g. 'resnet*' or 'cifar/*' (default: all)")
    p.set_defaults(func=_list)

    p = sub.add_parser("schema", help="print the JSON Schema of the spec language",
                       description="Print the JSON Schema of spec files, for editors.")
    p.set_defaults(func=_schema)

    p = sub.add_parser("store", help="check a results folder",
                       description="Inspect a results folder.")
    store_sub = p.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    q = store_sub.add_parser(
        "check", help="list every bad file (corrupt record, key mismatch, outside link)",
        description="List every file of the experiments under RESULTS_DIR that resbench refuses "
                    "(a corrupt record, one whose key is not its file name, a manifest that is "
                    "not a JSON object, a temp file of an interrupted write, a symlink leading "
                    "outside the results folder); exit 1 if any is found.")
    q.add_argument("results", type=Path, metavar="RESULTS_DIR",
                   help="a results root or one experiment folder")
    q.add_argument("--move-aside", action="store_true",
                   help="move the bad files to <experiment>/quarantine/ (a rerun then trains "
                        "their trials again)")
    q.set_defaults(func=_store_check)

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
