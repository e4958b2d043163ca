"""Results folders for report tests, written through the real store in the documented format.

Records are built as ``TrialRecord`` models, the schema the trial runner and the searches write,
so a fixture cannot hold a field the code does not.

``write_suite`` makes a degradation suite (plain and residual CIFAR nets at depths 8/14/20, two
seeds, curves and gradient flow) with one diverged and one failed trial; ``write_search`` makes
an Optuna search with a real ``study.db``, one pruned and one failed trial. Numbers follow the
qualitative shape of He et al. 2015 (deeper plain nets train worse) with seeded noise.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

from resbench.spec import parse_spec
from resbench.spec.recipe import Recipe
from resbench.store import (
    CurveRow,
    GradFlowRow,
    Metrics,
    SearchInfo,
    Store,
    TrialRecord,
    trial_key,
)

DEPTHS = (8, 14, 20)
SEEDS = (0, 1)
EPOCHS = 5


def make_spec(name: str, shortcut: str, depth: int, block: str = "basic", width: int = 16):
    """A three-stage CIFAR net of ``depth`` weighted layers (6n+2 basic, 9n+2 bottleneck)."""
    per_block = 2 if block == "basic" else 3
    n = (depth - 2) // (3 * per_block)
    return parse_spec({
        "name": name, "num_classes": 10, "stem": {"kind": "cifar", "width": 16}, "block": block,
        "shortcut": shortcut,
        "stages": [{"depth": n, "width": width * 2 ** i, "stride": 1 if i == 0 else 2}
                   for i in range(3)],
    })


def recipe(lr: float = 0.1) -> dict[str, Any]:
    """A resolved trial recipe on the synthetic data set."""
    return Recipe(epochs=EPOCHS, optimizer={"lr": lr}, data={"name": "synthetic"}).trial_dict()


def _final_accs(shortcut: str, depth: int, block: str, lr: float, rng: random.Random):
    """Final train/val accuracy: plain nets degrade with depth, residual nets improve."""
    if shortcut == "none":
        train = 0.97 - 0.012 * (depth - 8)
    else:
        train = 0.975 + 0.0012 * (depth - 8)
    train -= 0.02 * abs(math.log10(lr / 0.1)) + (0.01 if block == "bottleneck" else 0.0)
    train += rng.gauss(0, 0.004)
    val = train - 0.05 + rng.gauss(0, 0.004)
    return min(train, 0.999), min(val, 0.999)


def _curves(train_acc: float, val_acc: float, epochs: int, rng: random.Random,
            diverge_at: int | None = None) -> list[CurveRow]:
    rows = []
    for epoch in range(1, epochs + 1):
        progress = 1 - math.exp(-1.2 * epoch) * 0.9
        t_acc = 0.1 + (train_acc - 0.1) * progress / (1 - math.exp(-1.2 * EPOCHS) * 0.9)
        v_acc = 0.1 + (val_acc - 0.1) * progress / (1 - math.exp(-1.2 * EPOCHS) * 0.9)
        loss = -math.log(max(t_acc, 1e-3)) * 1.3 + rng.uniform(0, 0.01)
        if diverge_at is not None and epoch >= diverge_at:
            loss, t_acc, v_acc = loss * 40 ** (epoch - diverge_at + 1), 0.1, 0.1
        rows.append(CurveRow(epoch=epoch, train_loss=loss, train_acc=t_acc, val_loss=loss * 1.1,
                             val_acc=v_acc, images_per_s=900.0, epoch_time_s=1.5,
                             lr=0.1 * 0.5 * (1 + math.cos(math.pi * epoch / EPOCHS))))
    return rows


def _grad_flow(spec, plain: bool) -> list[GradFlowRow]:
    blocks = [f"layer{i + 1}.{j}" for i, s in enumerate(spec.stages) for j in range(s.depth)]
    rows = []
    for step in (0, 10):
        for index, block in enumerate(blocks):
            from_output = len(blocks) - 1 - index
            norm = 0.5 * (0.55 ** from_output if plain else 0.97 ** from_output)
            rows.append(GradFlowRow(step=step, block=block, index=index,
                                    grad_norm=norm * (1.0 if step == 0 else 0.8)))
    return rows


def make_record(experiment: str, spec, seed: int, *, lr: float = 0.1, status: str = "completed",
                reason: str | None = None, epochs_run: int = EPOCHS,
                search: SearchInfo | None = None, grad_flow: bool = True) -> TrialRecord:
    """One trial record exactly as docs/ARCHITECTURE.md documents it."""
    rng = random.Random(int(spec.key(), 16) + 1000 * seed + round(lr * 1e4))
    summary = spec.summary_fields()
    trial_recipe = recipe(lr)
    train_acc, val_acc = _final_accs(summary["shortcut"], summary["depth"], summary["block"],
                                     lr, rng)
    params = 270_000 * summary["depth"] // 20 + (30_000 if summary["shortcut"] == "projection" else 0)
    metrics = Metrics(
        params=params, macs=params * 150, latency_ms_b1=0.05 * summary["depth"],
        latency_ms_bn=0.01 * summary["depth"], latency_batch=256,
        images_per_s=20_000 / summary["depth"], peak_memory_bytes=params * 40,
        total_time_s=1.5 * epochs_run,
    )
    curves: list[CurveRow] = []
    if status in ("completed", "pruned", "diverged"):
        diverge_at = epochs_run if status == "diverged" else None
        curves = _curves(train_acc, val_acc, epochs_run, rng, diverge_at=diverge_at)
        metrics.best_val_acc = max(c.val_acc for c in curves)
        metrics.final_val_acc = curves[-1].val_acc
        metrics.final_train_acc = curves[-1].train_acc
        metrics.final_train_loss = float("nan") if diverge_at else curves[-1].train_loss
        metrics.epochs = epochs_run
    return TrialRecord(
        key=trial_key(spec.canonical(), trial_recipe, seed), experiment=experiment,
        spec_name=spec.name, spec_key=spec.key(), spec={**spec.canonical(), "name": spec.name},
        summary=summary, recipe=trial_recipe, seed=seed, status=status, reason=reason,
        metrics=metrics, curves=curves,
        grad_flow=_grad_flow(spec, summary["shortcut"] == "none") if grad_flow and curves else [],
        search=search, started_at="2026-11-22T04:00:00+00:00",
        finished_at="2026-11-22T04:01:00+00:00",
    )


def write_suite(root: Path, name: str = "degradation") -> Path:
    """A suite: plain/residual × depths 8/14/20 × seeds 0/1, plus a diverged and a failed trial."""
    store = Store(root / name)
    specs = []
    for depth in DEPTHS:
        specs.append(make_spec(f"plain{depth}", "none", depth))
        specs.append(make_spec(f"resnet{depth}", "zero_pad", depth))
    for spec in specs:
        for seed in SEEDS:
            store.write_record(make_record(name, spec, seed))
    store.write_record(make_record(name, make_spec("plain20", "none", 20), 2, status="diverged",
                                   reason="non-finite training loss at epoch 3", epochs_run=3))
    projection = make_spec("resnet20-proj", "projection", 20)
    store.write_record(make_record(name, projection, 0, status="failed",
                                   reason="RuntimeError: out of memory"))
    store.write_record(make_record(name, projection, 1))
    store.write_manifest({"kind": "suite", "specs": {s.name: s.canonical() for s in specs},
                          "recipe": recipe()})
    return store.path


SEARCH_TRIALS = [  # (block, shortcut, depth, lr, status)
    ("basic", "none", 8, 0.1, "completed"), ("basic", "zero_pad", 20, 0.05, "completed"),
    ("bottleneck", "projection", 20, 0.2, "completed"), ("basic", "none", 20, 0.1, "completed"),
    ("basic", "projection", 14, 0.02, "completed"), ("basic", "none", 14, 0.3, "pruned"),
    ("bottleneck", "zero_pad", 11, 0.1, "completed"), ("basic", "zero_pad", 8, 0.08, "completed"),
    ("bottleneck", "none", 20, 0.1, "completed"), ("basic", "projection", 20, 0.4, "failed"),
    ("basic", "zero_pad", 14, 0.12, "completed"), ("basic", "none", 8, 0.03, "completed"),
    ("bottleneck", "projection", 11, 0.06, "completed"), ("basic", "zero_pad", 20, 0.15, "completed"),
]


def write_search(root: Path, name: str = "space") -> Path:
    """An Optuna search: records with ``search.params`` and a matching real ``study.db``."""
    import optuna

    store = Store(root / name)
    storage = f"sqlite:///{(store.path / 'study.db').resolve()}"
    store.path.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    distributions = {
        "block": optuna.distributions.CategoricalDistribution(["basic", "bottleneck"]),
        "shortcut": optuna.distributions.CategoricalDistribution(["none", "zero_pad", "projection"]),
        "depth": optuna.distributions.IntDistribution(8, 20),
        "lr": optuna.distributions.FloatDistribution(0.01, 0.5, log=True),
    }
    states = {"completed": optuna.trial.TrialState.COMPLETE,
              "pruned": optuna.trial.TrialState.PRUNED, "failed": optuna.trial.TrialState.FAIL}
    for number, (block, shortcut, depth, lr, status) in enumerate(SEARCH_TRIALS):
        spec = make_spec(name, shortcut, depth, block)  # the runner names specs after the space
        params = {"block": block, "shortcut": shortcut, "depth": depth, "lr": lr}
        record = make_record(name, spec, 0, lr=lr, status=status, grad_flow=False,
                             epochs_run=2 if status == "pruned" else EPOCHS,
                             reason={"pruned": "pruned at epoch 2 by MedianPruner",
                                     "failed": "RuntimeError: loss is NaN at step 0"}.get(status),
                             search=SearchInfo(runner="optuna", study=name, trial_number=number,
                                               params=params))
        store.write_record(record)
        value = record.metrics.best_val_acc if status == "completed" else None
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, value=value, state=states[status]))
    store.write_manifest(search_manifest(name, "optuna"))
    return store.path


def search_manifest(study: str, runner: str, objectives: tuple[str, ...] = ("val_acc",)
                    ) -> dict[str, Any]:
    """A manifest as ``resbench.search.SearchConfig.manifest()`` writes it."""
    return {"kind": "search", "space_file": "space.yaml", "space": {},
            "search": {"runner": runner, "objectives": list(objectives), "trials": 14,
                       "sampler": "tpe", "pruner": "median", "max_params": None,
                       "max_macs": None, "seed": 0, "sampler_seed": 0, "study": study}}
