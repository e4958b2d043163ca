"""Compiler benchmark: is a compiled spec as fast as the hand-written network it describes?

Measures, in one process on the CPU:
  1. forward+backward throughput of the compiled ResNet-50 vs torchvision's resnet50, and of
     the compiled CIFAR ResNet-56 vs the classic hand-written option-A ResNet-56 below,
     interleaved (alternating rounds after a warm-up; median of the rounds), as ratios
     compiled / reference (target >= 0.98), and their per-call overhead on tiny inputs;
  2. the time to build pre-activation ResNet-1001 and compute its cost (target < 2 s);
  3. the time of ``import resbench`` in a fresh interpreter (target < 0.5 s).

Run: python benchmarks/bench_compile.py [--rounds 21] [--threads 1] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resbench.compile import ResNet, build, cost  # noqa: E402
from resbench.spec import load_spec  # noqa: E402

SPECS = REPO / "specs"


# ----- the reference: He et al. 2015's CIFAR ResNet-56 with option A shortcuts, by hand -----

class RefBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + x), x subsampled and zero-padded when reshaped."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        if self.stride != 1 or self.pad:
            x = F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.pad))
        out += x
        return F.relu(out, inplace=True)


class RefCifarResNet(nn.Module):
    """6n+2 layers: 3x3 conv 16, three stages of n blocks (16, 32, 64), global pool, fc."""

    def __init__(self, n: int = 9, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, planes = [], 16
        for width, stride in ((16, 1), (32, 2), (64, 2)):
            for j in range(n):
                blocks.append(RefBlock(planes, width, stride if j == 0 else 1))
                planes = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# ----- measurement -----------------------------------------------------------------------------

def train_step(model: nn.Module, x: Tensor, y: Tensor) -> None:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    for p in model.parameters():
        p.grad = None


def interleaved(models: dict[str, nn.Module], x: Tensor, y: Tensor, *, rounds: int, steps: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds per step of each model in each round, timed in alternating order."""
    for model in models.values():
        model.train()
        for _ in range(warmup):
            train_step(model, x, y)
    times: dict[str, list[float]] = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(steps):
                train_step(models[name], x, y)
            times[name].append((time.perf_counter() - start) / steps)
    return times


def compare(label: str, ours: nn.Module, reference: nn.Module, batch: int, size: int,
            classes: int, rounds: int, steps: int) -> float:
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, classes, (batch,))
    t = interleaved({"compiled": ours, "reference": reference}, x, y, rounds=rounds, steps=steps,
                    warmup=2)
    ratios = [r / c for r, c in zip(t["reference"], t["compiled"])]  # paired by round
    ratio = statistics.median(ratios)
    best = min(t["reference"]) / min(t["compiled"])  # least disturbed rounds, as timeit does
    ours_s, ref_s = statistics.median(t["compiled"]), statistics.median(t["reference"])
    print(f"{label}: batch {batch} at {size}x{size}, fwd+bwd: compiled {batch / ours_s:.1f} "
          f"img/s, reference {batch / ref_s:.1f} img/s; throughput ratio compiled/reference: "
          f"median {ratio:.3f} (rounds {min(ratios):.3f}..{max(ratios):.3f}), best-of "
          f"{best:.3f} (target >= 0.98)")
    return ratio


def overhead(label: str, ours: nn.Module, reference: nn.Module, x: Tensor,
             rounds: int = 30) -> float:
    """Per-call Python overhead: eval forwards on a tiny input, best round of each (ratio)."""
    times: dict[str, list[float]] = {"compiled": [], "reference": []}
    models = {"compiled": ours.eval(), "reference": reference.eval()}
    with torch.no_grad():
        for r in range(rounds):
            for name in (list(models) if r % 2 == 0 else list(models)[::-1]):
                start = time.perf_counter()
                for _ in range(5):
                    models[name](x)
                times[name].append((time.perf_counter() - start) / 5)
    ours_s, ref_s = min(times["compiled"]), min(times["reference"])
    print(f"{label}: eval forward, batch 1 at {x.shape[-1]}x{x.shape[-1]} (overhead-bound): "
          f"compiled {ours_s * 1e3:.2f} ms, reference {ref_s * 1e3:.2f} ms, "
          f"ratio {ref_s / ours_s:.3f}")
    return ref_s / ours_s


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def import_time(repeats: int = 5) -> float:
    code = ("import time; t = time.perf_counter(); import resbench; "
            "print(time.perf_counter() - t)")
    runs = [float(subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                                 capture_output=True, text=True).stdout)
            for _ in range(repeats)]
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds per model")
    parser.add_argument("--steps", type=int, default=1, help="training steps per round")
    parser.add_argument("--r50-batch", type=int, default=8)
    parser.add_argument("--r50-size", type=int, default=112)
    parser.add_argument("--r56-batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: on a shared machine, threads "
                             "waiting on each other swamp the difference being measured)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 step (smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 3, 1
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")

    import torchvision

    compare("ResNet-50 vs torchvision.models.resnet50",
            build(SPECS / "torchvision" / "resnet50.yaml"), torchvision.models.resnet50(),
            args.r50_batch, args.r50_size, 1000, args.rounds, args.steps)
    compare("CIFAR ResNet-56 vs hand-written option A",
            build(SPECS / "cifar" / "resnet56.yaml"), RefCifarResNet(n=9),
            args.r56_batch, 32, 10, args.rounds, args.steps)

    overhead("ResNet-50 vs torchvision", build(SPECS / "torchvision" / "resnet50.yaml"),
             torchvision.models.resnet50(), torch.randn(1, 3, 32, 32))
    overhead("CIFAR ResNet-56 vs hand-written", build(SPECS / "cifar" / "resnet56.yaml"),
             RefCifarResNet(n=9), torch.randn(1, 3, 8, 8))

    path = SPECS / "preact" / "preact_resnet1001.yaml"
    cold_build = seconds(lambda: build(path))
    cold_cost = seconds(lambda: cost(path))
    warm_build = statistics.median(seconds(lambda: build(path)) for _ in range(3))
    warm_cost = statistics.median(seconds(lambda: cost(path)) for _ in range(3))
    spec = load_spec(path)
    meta = statistics.median(seconds(lambda: _meta_build(spec)) for _ in range(3))
    print(f"preact ResNet-1001: build {warm_build:.2f} s + cost {warm_cost:.2f} s = "
          f"{warm_build + warm_cost:.2f} s (target < 2 s); first call in the process "
          f"{cold_build:.2f} s + {cold_cost:.2f} s (includes torch's one-time lazy imports); "
          f"meta-device build alone {meta:.2f} s")
    print(f"import resbench: {import_time() * 1000:.1f} ms in a fresh interpreter "
          "(target < 500 ms)")


def _meta_build(spec) -> ResNet:  # noqa: ANN001
    with torch.device("meta"):
        return ResNet(spec, initialize=False)


if __name__ == "__main__":
    main()
