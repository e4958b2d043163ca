"""Training throughput: resbench's in-memory loader vs a standard DataLoader(TensorDataset).

Both feed the same small conv net the same data with the same augmentation (random crop with
4-pixel padding + horizontal flip): the in-memory loader augments whole batches on the device;
the reference does it per sample with torchvision transforms in a Dataset, as usual. Rounds of
the two alternate in one process so that machine load affects both alike; the printed ratio is
the median over rounds of (in-memory images/s) / (DataLoader images/s), for training and for
drawing batches alone (which isolates the data pipeline from the model's compute).

    python benchmarks/bench_data.py [--steps 100] [--rounds 3] [--workers 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.transforms import v2

from resbench.data import load_dataset, make_loader


class TransformedTensors(Dataset):
    """The usual way: a TensorDataset whose samples pass through torchvision transforms."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size: int) -> None:
        self.data = TensorDataset(images, labels)
        self.transform = v2.Compose([v2.RandomCrop(size, padding=4), v2.RandomHorizontalFlip()])

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data[index]
        return self.transform(x), y


def small_net(channels: int, classes: int) -> nn.Module:
    def conv(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    return nn.Sequential(*conv(channels, 8), nn.MaxPool2d(2), *conv(8, 16), nn.MaxPool2d(2),
                         *conv(16, 16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, classes))


def load_only(batches: Iterable, steps: int) -> float:
    """Draw ``steps`` batches without training on them; return images per second."""
    done = images = 0
    start = time.perf_counter()
    while done < steps:
        for _, y in batches:
            images += len(y)
            done += 1
            if done == steps:
                break
    return images / (time.perf_counter() - start)


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, batches: Iterable, steps: int) -> float:
    """Run ``steps`` optimiser steps, cycling over epochs; return images per second."""
    done = images = 0
    start = time.perf_counter()
    while done < steps:
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            images += len(y)
            done += 1
            if done == steps:
                break
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="training steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="DataLoader workers for the reference")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 avoids oversubscribing a small shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("synthetic", image_size=args.image_size,
                        options={"channels": 3, "count": 5000})
    model = small_net(data.in_channels, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    memory = make_loader(data.train, args.batch_size, train=True,
                         augment={"crop_padding": 4, "flip": True}, device="cpu", seed=0)
    reference = DataLoader(
        TransformedTensors(data.train.images, data.train.labels, args.image_size),
        batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0)
    train_steps(model, opt, memory, 10)  # warm-up: allocator, kernels, worker start-up
    train_steps(model, opt, reference, 10)
    train_ratios, load_ratios = [], []
    for r in range(args.rounds):
        fast = train_steps(model, opt, memory, args.steps)
        slow = train_steps(model, opt, reference, args.steps)
        fast_load, slow_load = load_only(memory, args.steps), load_only(reference, args.steps)
        train_ratios.append(fast / slow)
        load_ratios.append(fast_load / slow_load)
        print(f"round {r + 1}: training in-memory {fast:,.0f} img/s vs DataLoader {slow:,.0f} img/s "
              f"({fast / slow:.2f}); loading alone {fast_load:,.0f} vs {slow_load:,.0f} img/s "
              f"({fast_load / slow_load:.2f})")
    setting = (f"{args.image_size}x{args.image_size}, batch {args.batch_size}, "
               f"{args.workers} DataLoader workers, {torch.get_num_threads()} torch threads, "
               f"median of {args.rounds}")
    print(f"training throughput ratio (in-memory / DataLoader, {setting}): "
          f"{statistics.median(train_ratios):.2f}x")
    print(f"loading-only throughput ratio (in-memory / DataLoader, {setting}): "
          f"{statistics.median(load_ratios):.2f}x")

if __name__ == "__main__":
    main()
