"""``resbench analyze RESULTS_DIR --analyses lesion,signal``: add analyses to finished trials.

No retraining: the trained net comes from the trial's saved weights (``weights/<key>.pt``; the
lesion study and the landscape need them), the net at initialisation is rebuilt from the
record's spec, recipe and seed exactly as the trial built it (signal propagation and shattered
gradients need only that). Each record is rewritten atomically with the new results merged into
its ``analyses``; results already there are kept unless ``--redo``.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

from resbench.errors import UserError, unknown
from resbench.spec.recipe import ANALYSES, AnalysesConfig

NEED_WEIGHTS = ("lesion", "landscape")
"""Analyses of the trained net; the others look at the net at initialisation."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, metavar="RESULTS_DIR",
                        help="an experiment folder, or a results root holding several")
    parser.add_argument("--analyses", required=True, metavar="NAMES",
                        help=f"comma-separated, from: {', '.join(ANALYSES)} (default options)")
    parser.add_argument("--experiment", default=None, metavar="NAME",
                        help="only this experiment folder under RESULTS_DIR")
    parser.add_argument("--redo", action="store_true",
                        help="recompute analyses a record already holds")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to run them (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads for torch (default 0: torch's default)")


@dataclass
class AnalyzeResult:
    """What ``analyze`` did: trials updated, and those it could not update, with why."""

    analyzed: list[str] = field(default_factory=list)  # trial keys
    up_to_date: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason


def parse_names(text: str) -> tuple[str, ...]:
    """``"lesion,signal"`` → ("lesion", "signal"); an unknown name gets the did-you-mean error."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError(f"--analyses: name at least one of {', '.join(ANALYSES)}")
    for name in names:
        if name not in ANALYSES:
            raise unknown("analysis", name, ANALYSES, path="--analyses")
    return tuple(dict.fromkeys(names))


def analyze(results: str | Path, names: tuple[str, ...], *, experiment: str | None = None,
            redo: bool = False, device: str = "auto", log=print) -> AnalyzeResult:
    """Run analyses ``names`` (default options) on every completed trial under ``results``."""
    from resbench.analysis import run_analyses
    from resbench.spec import parse_spec
    from resbench.spec.recipe import parse_recipe
    from resbench.store import Analyses, Store, experiment_folders, load_model
    from resbench.train.datacache import DataCache
    from resbench.train.loop import resolve_device
    from resbench.train.trial import initial_model

    folders = experiment_folders(results)
    if experiment is not None:
        by_name = {f.name: f for f in folders}
        if experiment not in by_name:
            raise unknown("experiment", experiment, sorted(by_name), path="--experiment")
        folders = [by_name[experiment]]
    try:
        where = resolve_device(device)
    except RuntimeError as e:
        raise UserError(str(e)) from None
    cfg = AnalysesConfig.model_validate(list(names))
    cache = DataCache()
    result = AnalyzeResult()
    for folder in folders:
        store = Store(folder)
        for record in store.records():
            if record.status != "completed":
                continue
            have = record.analyses or Analyses()
            todo = tuple(n for n in names if redo or getattr(have, n) is None)
            if not record.weights:
                missing = [n for n in todo if n in NEED_WEIGHTS]
                if missing:
                    result.skipped[record.key] = (f"{', '.join(missing)}: no saved weights "
                                                  "(save_weights: false, or trained before "
                                                  "weights were kept)")
                todo = tuple(n for n in todo if n not in NEED_WEIGHTS)
            if not todo:
                if record.key not in result.skipped:
                    result.up_to_date.append(record.key)
                continue
            start = time.perf_counter()
            file = folder / "trials" / f"{record.key}.json"
            spec = parse_spec(dict(record.spec), file=file)
            recipe = parse_recipe(dict(record.recipe), file=file)
            trained = load_model(folder, record) if any(n in NEED_WEIGHTS for n in todo) else None
            done = run_analyses(cfg, trained, lambda: initial_model(spec, recipe, record.seed),
                                cache.get(recipe.data), where, only=todo)
            for name in todo:
                setattr(have, name, getattr(done, name))
            record.analyses = have
            store.write_record(record)
            result.analyzed.append(record.key)
            log(f"{folder.name}/{record.key} {record.spec_name} seed={record.seed}: "
                f"{', '.join(todo)} ({time.perf_counter() - start:.1f} s)")
    return result


def run(args: argparse.Namespace) -> int:
    names = parse_names(args.analyses)
    result = analyze(args.results, names, experiment=args.experiment, redo=args.redo,
                     device=args.device)
    for key, why in result.skipped.items():
        print(f"skipped {key}: {why}")
    print(f"analyzed {len(result.analyzed)} trial{'s' if len(result.analyzed) != 1 else ''}"
          f" ({', '.join(names)}); {len(result.up_to_date)} already had them; "
          f"{len(result.skipped)} lacked saved weights")
    if not result.analyzed and not result.up_to_date:
        raise UserError(f"{args.results}: no completed trial could be analysed"
                        + (" (none has saved weights)" if result.skipped else ""))
    return 0
