"""cost() benchmark: candidates per second on one core, against the whole-model count.

In one process, with one torch thread, on candidates drawn uniformly from a space:
  1. drawing a point (``Space.sample``) and validating it (``parse_spec``), per candidate;
  2. ``cost()`` over the stream with empty memos (every distinct unit measured, every distinct
     op run, as it first appears: what a fresh ``resbench sample`` run pays; the first 200
     candidates' rate is printed on its own, the memos being emptiest there), then over the
     same stream again (memos warm: the steady state of a long run);
  3. the whole-model reference (``_cost_whole_model``, one forward of the whole meta network,
     the previous method) on the first candidates, whose numbers must equal cost()'s;
for CIFAR-style specs (``specs/spaces/cifar_resnets.yaml``) and ImageNet ResNets (the
torchvision library specs and an ImageNet-style space), plus one spec of depth 10^6.
Targets: >= 1,000 CIFAR candidates/s and >= 100 ImageNet candidates/s; parse_spec well under.

Run: python benchmarks/bench_cost.py [--n 3000] [--reference 60] [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resbench.compile import _clear_memos, _cost_whole_model, _measure, cost  # noqa: E402
from resbench.spec import Spec, load_spec, parse_spec  # noqa: E402
from resbench.spec.space import Space, UniformSampler, load_space, parse_space  # noqa: E402

SPECS = REPO / "resbench" / "specs"
FIRST = 200  # candidates whose rate is also printed on its own (the memo is emptiest there)

IMAGENET_SPACE = {
    "name": "imagenet_resnets", "num_classes": 1000, "stem": "imagenet",
    "block": {"$choice": ["basic", "bottleneck"]}, "shortcut": "projection",
    "stages": [{"depth": {"$int": [1, 8]}, "width": {"$choice": [w, w * 3 // 2, w * 2]},
                "stride": 1 if i == 0 else 2}
               for i, w in enumerate((32, 64, 128, 256))],
}


def seconds(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Seconds ``fn`` takes over ``items``."""
    start = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - start


def rate(fn: Callable[[Any], Any], items: Sequence[Any]) -> float:
    """Items per second of ``fn`` over ``items``."""
    return len(items) / seconds(fn, items)


def draw(space: Space, n: int, seed: int) -> tuple[list[dict[str, Any]], float]:
    sampler = UniformSampler(seed)
    start = time.perf_counter()
    points = [space.sample(sampler)[0] for _ in range(n)]
    return points, n / (time.perf_counter() - start)


def measure(label: str, specs: list[Spec], reference: int, draws_per_s: float | None,
            parse_per_s: float | None) -> dict[str, Any]:
    _clear_memos()  # what a fresh process pays
    head = specs[:FIRST]
    each = []  # the memos fill fastest here
    for spec in head:
        start = time.perf_counter()
        cost(spec)
        each.append(time.perf_counter() - start)
    head_s = sum(each)
    first = len(head) / head_s
    each.sort()
    median, p90 = each[len(each) // 2], each[min(len(each) - 1, int(len(each) * 0.9))]
    cold = len(specs) / (head_s + seconds(cost, specs[FIRST:]))
    misses = _measure.cache_info().misses
    warm = rate(cost, specs)
    ref_specs = specs[:reference]
    whole = rate(_cost_whole_model, ref_specs)
    same = all(cost(s) == _cost_whole_model(s) for s in ref_specs)
    row = {"label": label, "n": len(specs), "units": misses, "cold": cold, "first": first,
           "first_median_s": median, "warm": warm,
           "whole": whole, "same": same, "draw": draws_per_s, "parse": parse_per_s}
    print(f"\n{label}: {len(specs)} candidates, {misses} distinct units measured")
    if draws_per_s is not None:
        print(f"  draw a point (Space.sample)       {draws_per_s:10,.0f} /s")
    if parse_per_s is not None:
        print(f"  validate it (parse_spec)          {parse_per_s:10,.0f} /s")
    print(f"  cost(), empty memo (whole stream) {cold:10,.0f} /s  (first {len(head)}: "
          f"{first:,.0f} /s; per candidate median {median * 1e3:.2f} ms, 90th percentile "
          f"{p90 * 1e3:.2f} ms)")
    print(f"  cost(), warm memo                 {warm:10,.0f} /s")
    print(f"  whole-model reference ({len(ref_specs)} specs)  {whole:10,.1f} /s")
    print(f"  ratio cost/reference: {cold / whole:,.0f}x (empty memo), {warm / whole:,.0f}x "
          f"(warm); numbers equal on the {len(ref_specs)}: {same}")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="candidates per stream")
    parser.add_argument("--reference", type=int, default=60,
                        help="candidates also counted by the whole-model reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.n < 1 or args.reference < 1:
        parser.error("--n and --reference take a positive number")
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; cost() memo of {_measure.cache_info().maxsize} "
          "units")

    start = time.perf_counter()  # torch loads its meta kernels on the first meta op
    cost(load_spec(SPECS / "torchvision" / "resnet18.yaml"))
    print(f"first cost() call of the process (torch's lazy imports): "
          f"{time.perf_counter() - start:.2f} s, not counted below")

    rows = []
    space = load_space(SPECS / "spaces" / "cifar_resnets.yaml")
    points, draws = draw(space, args.n, args.seed)
    parses = rate(parse_spec, points)
    rows.append(measure("CIFAR-style (spaces/cifar_resnets.yaml)",
                        [parse_spec(p) for p in points], args.reference, draws, parses))

    points, draws = draw(parse_space(IMAGENET_SPACE), max(args.n // 3, 1), args.seed)
    parses = rate(parse_spec, points)
    rows.append(measure("ImageNet ResNets (4 stages, depths 1-8, 3 widths each)",
                        [parse_spec(p) for p in points], args.reference // 3 or 1, draws,
                        parses))

    library = [load_spec(p) for p in sorted((SPECS / "torchvision").glob("*.yaml"))]
    dumped = [s.model_dump(mode="json", exclude_defaults=True) for s in library]
    rows.append(measure(f"torchvision library specs ({len(library)})", library * 20,
                        len(library), None, rate(parse_spec, dumped * 20)))

    small = parse_spec({"stem": "cifar", "num_classes": 10, "stages": [{"depth": 1, "width": 16}]})
    # A copy skips validation, so this goes past any depth bound of the schema.
    deep_stage = small.stages[0].model_copy(update={"depth": 10**6})
    deep = small.model_copy(update={"stages": (deep_stage,)})
    start = time.perf_counter()
    c = cost(deep)
    print(f"\ndepth 10^6 (one stage of 16-channel basic blocks): cost() in "
          f"{time.perf_counter() - start:.3f} s, {c.params:,} params, {c.macs / 1e9:,.1f} GMACs")

    cifar, imagenet = rows[0], rows[1]
    print("\nsummary (candidates/s on one core):")
    for name, row in (("CIFAR-style", cifar), ("ImageNet   ", imagenet)):
        print(f"  {name}  cost {row['cold']:,.0f} over {row['n']} from an empty memo (first "
              f"{FIRST}: {row['first']:,.0f}, median {1 / row['first_median_s']:,.0f}), "
              f"{row['warm']:,.0f} warm; parse_spec "
              f"{row['parse']:,.0f}; whole-model reference {row['whole']:,.1f}")
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
