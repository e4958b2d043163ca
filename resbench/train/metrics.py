"""Measurements beside training: inference latency, peak memory, a timer that syncs the device."""
from __future__ import annotations

import resource
import statistics
import sys
import time

import torch
from torch import nn


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so wall-clock times mean what they say."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def latency_ms(model: nn.Module, example: torch.Tensor, *, repeats: int = 10,
               budget_s: float = 2.0) -> float:
    """Median wall time of one eval-mode forward pass on ``example``, after a warm-up pass."""
    model.eval()
    device = example.device
    model(example)
    synchronize(device)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        model(example)
        synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """Peak memory in bytes and what it measures.

    On CUDA it is the tensors' peak for this trial (``torch.cuda.max_memory_allocated``); on CPU
    it is the process's peak resident set size, which also counts earlier trials in the process.
    """
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024), "process_max_rss"
