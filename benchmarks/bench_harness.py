#!/usr/bin/env python
"""Harness overhead: training throughput of a resbench trial's loop vs a minimal PyTorch loop.

Both train the same spec (two copies with identical weights) on the same data tensors, batch
size and optimizer, in one process, interleaved round by round (alternating which goes first)
so that load from other processes hits both alike. The resbench side is exactly what
``run_trial`` runs each epoch: ``make_loader`` batches and ``TrainLoop.train_epoch`` (per-step
schedule, divergence check, accuracy, gradient-flow probe at the recipe's steps). Prints the
ratio of median throughputs; the target is >= 0.95.

    python benchmarks/bench_harness.py [--spec specs/cifar/resnet20.yaml] [--rounds 7]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resbench.compile import build  # noqa: E402
from resbench.data import make_loader  # noqa: E402
from resbench.spec import load_spec  # noqa: E402
from resbench.spec.recipe import parse_recipe  # noqa: E402
from resbench.train.loop import TrainLoop  # noqa: E402
from resbench.train.trial import adapt_spec, load_data  # noqa: E402


def minimal_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
                  y: torch.Tensor, batch_size: int, generator: torch.Generator) -> int:
    """The hand-written reference: shuffle, slice, forward, loss, backward, step. Images seen."""
    model.train()
    n = len(x) // batch_size * batch_size
    order = torch.randperm(len(x), generator=generator)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return n


def timed(run) -> tuple[float, float]:
    """Images/s of one epoch by the wall clock and by this process's CPU time.

    On a machine shared with other jobs the wall clock swings with their load; CPU time counts
    only this process's work (with one thread it is the work itself), so both are reported.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    images = run()
    return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "specs" / "cifar" / "resnet20.yaml"))
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--image-size", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    recipe = parse_recipe({"epochs": 1000, "batch_size": args.batch_size, "device": "cpu",
                           "data": {"name": args.dataset, "image_size": args.image_size},
                           "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                         "weight_decay": 5e-4},
                           "schedule": {"name": "constant"}})
    data = load_data(recipe.data)
    spec = adapt_spec(load_spec(args.spec), data)
    torch.manual_seed(0)
    ours = build(spec)
    theirs = copy.deepcopy(ours)
    device = torch.device("cpu")
    loader = make_loader(data.train, recipe.batch_size, train=True, augment=recipe.augment,
                         device=device, seed=0)
    loop = TrainLoop(ours, recipe, device, len(loader), ours.blocks())
    x, y = data.train.images, data.train.labels
    opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)

    loop.train_epoch(loader)  # warm-up both (allocator, oneDNN kernels)
    minimal_epoch(theirs, opt, x, y, recipe.batch_size, generator)
    def ours_epoch() -> int:
        loop.train_epoch(loader)
        return len(loader) * recipe.batch_size

    def theirs_epoch() -> int:
        return minimal_epoch(theirs, opt, x, y, recipe.batch_size, generator)

    harness, minimal = [], []
    for r in range(args.rounds):
        pair = [(harness, ours_epoch), (minimal, theirs_epoch)]
        for results, run in pair if r % 2 == 0 else pair[::-1]:
            results.append(timed(run))
    print(f"spec {spec.name} ({spec.depth} layers) on {data.name} {data.image_size}x{data.image_size}, "
          f"batch {recipe.batch_size}, {len(loader) * recipe.batch_size} images/epoch, "
          f"{args.rounds} rounds, {torch.get_num_threads()} threads")
    for i, clock in enumerate(("wall", "cpu")):
        h = statistics.median(v[i] for v in harness)
        m = statistics.median(v[i] for v in minimal)
        paired = statistics.median(a[i] / b[i] for a, b in zip(harness, minimal))
        print(f"[{clock:>4} clock] resbench {h:,.0f} images/s, minimal {m:,.0f} images/s: "
              f"ratio {h / m:.3f} (median of per-round ratios {paired:.3f}; target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
