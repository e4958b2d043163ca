"""GPU readiness check: a prepared script for a machine with one CUDA GPU (under 8 minutes).

Three parts, each printed with its figures and a PASS / FAIL / SKIP line:

  tests       the CUDA-only tests (``pytest -m cuda``; they are skipped on machines without one);
  throughput  training images/s (SGD steps on random batches, the same loop for every net) of
              resbench's compiled ResNet-50 against torchvision's ``resnet50`` (224x224), and of
              resbench's CIFAR ResNet-56 against a hand-written ResNet-56 in this file (32x32),
              each with bf16 autocast, channels_last and torch.compile; the ratio
              resbench/reference is the figure to watch (about 1.0: the compiled net costs
              nothing over the reference; parameter counts are checked equal);
  ray         a Ray Tune search through the CLI with ``--gpus-per-trial 0.25`` on a local
              cluster, and the most trials that ran at once according to their records
              (``search.ray`` started/finished; 4 expected on one GPU).

``--cpu-smoke`` runs every path this machine can reach, tiny: no CUDA tests (a SKIP line says
why), the throughput loop with small batches and without torch.compile, and the Ray search on
a local cluster that declares one GPU (the trials train on the CPU). A fast test runs it.

    python benchmarks/gpu_check.py [--cpu-smoke] [--skip tests,throughput,ray] [--json OUT]

Exit status 0 when nothing failed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PARTS = ("tests", "throughput", "ray")


class Report:
    """PASS / FAIL / SKIP lines and the figures behind them."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}

    def add(self, part: str, status: str, message: str, **figures: Any) -> None:
        self.results[part] = {"status": status, "message": message, **figures}
        print(f"[{status}] {part}: {message}", flush=True)

    @property
    def failed(self) -> bool:
        return any(r["status"] == "FAIL" for r in self.results.values())


# ----- the CUDA-only tests -------------------------------------------------------------------

def cuda_tests(report: Report, smoke: bool, timeout: float) -> None:
    import torch

    if smoke or not torch.cuda.is_available():
        report.add("tests", "SKIP", "no CUDA device here: the tests marked cuda are skipped "
                   "(pytest -m cuda runs them on a GPU machine)")
        return
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "cuda", "tests"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or [""]
    seconds = time.perf_counter() - start
    report.add("tests", "PASS" if proc.returncode == 0 else "FAIL",
               f"pytest -m cuda: {tail[0]} ({seconds:.0f} s)", returncode=proc.returncode)
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")


# ----- training throughput -------------------------------------------------------------------

def hand_written_resnet56(num_classes: int = 10) -> Any:
    """ResNet-56 for CIFAR as He et al. 2015 (section 4.2) describe it, written out plainly:
    3x3 stem of 16, three stages of 9 basic blocks (16, 32, 64), option A shortcuts (strided
    subsample, zero channels), global average pool, one linear layer."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.stride, self.pad = stride, cout - cin

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
            if self.pad:
                short = F.pad(short, (0, 0, 0, 0, 0, self.pad))
            return F.relu(out + short)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            blocks, cin = [], 16
            for width, stride in ((16, 1), (32, 2), (64, 2)):
                for i in range(9):
                    blocks.append(Block(cin, width, stride if i == 0 else 1))
                    cin = width
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.blocks(F.relu(self.bn1(self.conv1(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return Net()


def images_per_s(model: Any, *, batch: int, size: int, classes: int, steps: int, warmup: int,
                 device: Any, compile: bool) -> tuple[float, float]:
    """Training images/s (SGD, bf16 autocast, channels_last) and the warm-up seconds (which
    include torch.compile's compilation)."""
    import torch
    from torch.nn import functional as F

    model = model.to(device).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    forward = torch.compile(model) if compile else model
    x = torch.randn(batch, 3, size, size, device=device).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    sync()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start), warm


def throughput(report: Report, smoke: bool) -> None:
    import torch
    import torchvision

    from resbench.compile import build

    cuda = torch.cuda.is_available() and not smoke
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    compile = cuda  # on a CPU, inductor's compile alone would take minutes: eager there
    pairs = [  # name, ours, reference, batch, size, steps
        ("ResNet-50 vs torchvision", lambda: build(REPO / "specs/torchvision/resnet50.yaml"),
         lambda: torchvision.models.resnet50(), 256 if cuda else 2, 224 if cuda else 64,
         30 if cuda else 2),
        ("ResNet-56 vs hand-written", lambda: build(REPO / "specs/cifar/resnet56.yaml"),
         hand_written_resnet56, 512 if cuda else 4, 32, 50 if cuda else 2),
    ]
    figures: dict[str, Any] = {"device": str(device), "compile": compile,
                               "precision": "bf16 autocast", "channels_last": True}
    ok = True
    for name, ours, ref, batch, size, steps in pairs:
        row: dict[str, Any] = {"batch": batch, "size": size}
        for label, make in (("resbench", ours), ("reference", ref)):
            torch.manual_seed(0)
            model = make()
            row[f"{label}_params"] = sum(p.numel() for p in model.parameters())
            rate, warm = images_per_s(model, batch=batch, size=size, classes=1000 if
                                      "50" in name else 10, steps=steps,
                                      warmup=3 if compile else 1, device=device, compile=compile)
            row[f"{label}_images_per_s"], row[f"{label}_warmup_s"] = rate, warm
            del model
            if cuda:
                torch.cuda.empty_cache()
        row["ratio"] = row["resbench_images_per_s"] / row["reference_images_per_s"]
        same = row["resbench_params"] == row["reference_params"]
        ok &= same
        figures[name] = row
        print(f"  {name}: {row['resbench_images_per_s']:,.0f} vs "
              f"{row['reference_images_per_s']:,.0f} images/s (ratio {row['ratio']:.2f}; "
              f"batch {batch} at {size}x{size}; params {row['resbench_params']:,} vs "
              f"{row['reference_params']:,}; warm-up {row['resbench_warmup_s']:.0f} s / "
              f"{row['reference_warmup_s']:.0f} s)", flush=True)
    what = ("bf16 autocast, channels_last, torch.compile on " + torch.cuda.get_device_name()
            if cuda else "bf16 autocast, channels_last, eager, tiny, on the CPU (smoke: "
            "no CUDA, no compile)")
    report.add("throughput", "PASS" if ok else "FAIL",
               what + ("" if ok else "; parameter counts differ"), **figures)


# ----- a Ray search sharing one GPU ----------------------------------------------------------

RAY_SPACE = {
    "name": "gpu_share", "stem": {"kind": "cifar", "width": 16}, "shortcut": "projection",
    "stages": [{"depth": {"$int": [1, 2]}, "width": 16, "stride": 1},
               {"depth": 1, "width": 32, "stride": 2}],
    "recipe": {"epochs": 6, "batch_size": 128, "grad_probe_steps": [], "latency_batch": 16,
               "optimizer": {"name": "sgd", "lr": {"$float": [0.01, 0.2], "log": True}},
               "data": {"name": "synthetic", "image_size": 32,
                        "options": {"count": 8192, "num_classes": 10}}},
    "search": {"objectives": "val_acc", "sampler": "random", "pruner": "none"},
}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that hold at one moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals],
                    key=lambda e: (e[0], e[1]))
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def ray_search(report: Report, smoke: bool, root: Path) -> None:
    import ray
    import torch
    import yaml

    from resbench.cli import main
    from resbench.search.ray_runner import _runtime_env
    from resbench.store import Store

    cuda = torch.cuda.is_available() and not smoke
    space = json.loads(json.dumps(RAY_SPACE))
    trials, cpus = 8, 1.0
    if not cuda:  # tiny trials; the local cluster declares one GPU, the trials train on CPUs
        space["recipe"].update(epochs=3, batch_size=64)
        space["recipe"]["data"]["options"]["count"] = 512
        space["stem"]["width"] = 4
        trials, cpus = 4, 0.25
    path = root / "gpu_share.yaml"
    path.write_text(yaml.safe_dump(space))
    ncpu = os.cpu_count() or 2
    ray.init(num_cpus=max(ncpu, 1), num_gpus=None if cuda else 1, include_dashboard=False,
             runtime_env=_runtime_env())
    start = time.perf_counter()
    try:
        code = main(["search", str(path), "--runner", "ray", "--gpus-per-trial", "0.25",
                     "--cpus-per-trial", str(cpus), "--trials", str(trials), "--scheduler",
                     "none", "--results", str(root / "results"), "--sampler-seed", "0",
                     "--quiet"])
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - start
    records = list(Store(root / "results" / "gpu_share").records())
    spans = [(r.search.ray.started, r.search.ray.finished) for r in records
             if r.search and r.search.ray and r.search.ray.finished]
    overlap = max_overlap(spans)
    gpus = sorted({g for r in records if r.search and r.search.ray for g in r.search.ray.gpu_ids})
    completed = sum(r.status == "completed" for r in records)
    message = (f"{completed}/{trials} trials completed in {seconds:.0f} s with --gpus-per-trial "
               f"0.25; at most {overlap} ran at once; GPU ids seen {gpus or 'none'}")
    if not cuda:
        message += " (smoke: a declared GPU, trials on the CPU; 4 at once is not required)"
    ok = code == 0 and completed == trials and (overlap >= 4 or not cuda)
    report.add("ray", "PASS" if ok else "FAIL", message, max_concurrent=overlap,
               seconds=seconds, gpu_ids=gpus, completed=completed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny runs of the paths a machine without CUDA can reach")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to skip: {PARTS}")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--tests-timeout", type=float, default=240.0)
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(PARTS):
        parser.error(f"--skip takes {', '.join(PARTS)}")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")  # this script is an entry point
    import torch

    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else ""),
          flush=True)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu-smoke on this machine", file=sys.stderr)
        return 1
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        if "tests" not in skip:
            cuda_tests(report, args.cpu_smoke, args.tests_timeout)
        if "throughput" not in skip:
            throughput(report, args.cpu_smoke)
        if "ray" not in skip:
            ray_search(report, args.cpu_smoke, Path(tmp))
    total = time.perf_counter() - started
    print(f"done in {total:.0f} s: {'FAILED' if report.failed else 'all passed'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"seconds": total, **report.results}, indent=1,
                                              default=str))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
