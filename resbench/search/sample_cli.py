"""``resbench sample SPACE --n 500 --macs 20M:40M [--params LO:HI] --seed 0 (--out DIR | --run)``:
a complexity-band population of a search space, written as a suite or run at once."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from resbench.errors import UserError

if TYPE_CHECKING:
    from resbench.search.population import Population

EPILOG = """\
Architectures are drawn uniformly from the space (choices uniformly, ranges uniformly, log
ranges log-uniformly), costed with resbench's cost() at the spec's input size (or
--input-size), and kept while they lie in every band given; a repeated point (architecture
and sampled recipe) is kept once. --out DIR writes DIR/suite.yaml and DIR/specs/*.yaml (run
it later with resbench bench DIR/suite.yaml); --run trains the population at once (the suite
is written to --out, or to RESULTS/EXPERIMENT/population/). The report's design-space
section names the band. Bands are LO:HI, inclusive, with optional suffixes k, M, G: 20M:40M, 0.5M:1.5M."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("space", type=Path, help="search-space file (YAML/JSON)")
    parser.add_argument("--n", type=int, default=100, help="models to keep (default: 100)")
    parser.add_argument("--macs", default=None, metavar="LO:HI",
                        help="keep models with LO <= MACs <= HI (e.g. 20M:40M)")
    parser.add_argument("--params", default=None, metavar="LO:HI",
                        help="keep models with LO <= parameters <= HI (e.g. 0.2M:1M)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    parser.add_argument("--max-draws", type=int, default=None, metavar="N",
                        help="stop after N draws (default: 200 per model asked for)")
    parser.add_argument("--input-size", type=int, default=None, metavar="PX",
                        help="resolution the bands apply at (default: each spec's input_size)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write the suite to DIR (DIR/suite.yaml, DIR/specs/)")
    parser.add_argument("--name", default=None, help="suite name (default: SPACE-BAND)")
    parser.add_argument("--run", action="store_true", help="train the population now")
    parser.add_argument("--results", default="results", metavar="DIR",
                        help="--run: root folder of experiments (default: results)")
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help="--run: experiment folder (default: the suite's name)")
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="--run: override epochs")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="--run: train on at most N examples (quick checks)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads for torch (default: torch's)")
    parser.add_argument("--progress", choices=("auto", "bar", "log", "none"), default="auto",
                        help="--run: progress display")
    parser.set_defaults(batch_size=None, device=None, precision=None, lr=None)


def run(args: argparse.Namespace) -> int:
    from resbench.search.population import Band, sample_population, write_suite
    from resbench.spec.space import load_space

    for flag in ("n", "max_draws", "input_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    macs = Band.parse(args.macs, flag="--macs") if args.macs is not None else None
    params = Band.parse(args.params, flag="--params") if args.params is not None else None
    if macs is None and params is None:
        raise UserError("give a band: --macs LO:HI and/or --params LO:HI")
    if args.out is None and not args.run:
        raise UserError("say where the population goes: --out DIR (a suite to run later) "
                        "and/or --run (train it now)")
    if not args.space.is_file():
        raise UserError(f"{args.space}: no such space file")
    space = load_space(args.space)
    pop = sample_population(space, args.n, macs=macs, params=params, seed=args.seed,
                            max_draws=args.max_draws, input_size=args.input_size)
    print(pop.summary())
    _note_resolution(pop, args.input_size)
    if len(pop.members) < args.n:
        print(f"warning: only {len(pop.members)} of {args.n} models found in the band; "
              "raise --max-draws or widen the band for more", file=sys.stderr)
    name = args.name or pop.default_name()
    if args.out is not None:
        folder = args.out
    else:
        from resbench.store import experiment_dir

        folder = experiment_dir(args.experiment or name, args.results) / "population"
    suite_file = write_suite(pop, folder, name=name)
    print(f"suite written to {suite_file}")
    if not args.run:
        print(f"run it with: resbench bench {suite_file}")
        return 0
    from resbench.train.cli import flags_layer, leaderboard
    from resbench.train.suite import load_suite, run_suite

    suite = load_suite(suite_file)
    result = run_suite(suite, results_root=args.results, experiment=args.experiment,
                       flags=flags_layer(args), progress=args.progress)
    print(f"\n{result.experiment_dir.name}: {result.ran} trial(s) run, {result.skipped} already "
          f"finished; results in {result.experiment_dir}")
    print(leaderboard(result.records))
    return 0


def _note_resolution(pop: Population, input_size: int | None) -> None:
    """Say so when the recipe trains at another resolution than the band was measured at (the
    records' MACs, counted at the data's resolution, would then lie outside the band)."""
    from resbench.spec.recipe import parse_recipe

    member = pop.members[0]
    trained = parse_recipe(member.recipe).data.image_size
    at = input_size or member.spec.input_size
    if trained is not None and trained != at:
        print(f"note: the band applies at {at}x{at} pixels but the recipe trains at "
              f"{trained}x{trained}; records will count MACs at {trained}x{trained} (set the "
              "space's input_size or --input-size to match)", file=sys.stderr)
