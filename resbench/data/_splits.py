"""What a data set loader returns, and the shared steps that turn raw arrays into it:
seeded stratified splits, a training-size limit, resizing and per-channel normalisation."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from resbench import memory
from resbench.errors import UserError, clip, shown


@dataclass(frozen=True)
class DataRequest:
    """The options of one ``load_dataset`` call, handed to the data set's loader function."""

    name: str
    root: Path | None = None
    image_size: int | None = None
    seed: int = 0
    val_fraction: float | None = None
    download: bool = False
    limit: int | None = None
    in_memory: bool | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class InMemoryDataset(Dataset):
    """Preprocessed (resized, normalised) float images ``(N, C, H, W)`` with int64 labels ``(N,)``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.ndim != 4 or labels.shape != (images.shape[0],):
            raise ValueError(f"images must be (N, C, H, W) and labels (N,), got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        self.images = images.float()
        self.labels = labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return f"InMemoryDataset(images={tuple(self.images.shape)})"


@dataclass(frozen=True)
class DataSplits:
    """A training and a validation set plus what a model and a report need to know about them."""

    name: str
    train: Dataset
    val: Dataset
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation in which every prefix holds the classes in their overall proportions.

    Each class is shuffled and its members spread evenly over [0, 1); sorting by that position
    interleaves the classes, so ``order[:k]`` is a stratified sample of exactly ``k``.
    """
    rng = np.random.default_rng(seed)
    position = np.empty(len(labels))
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        position[members] = (np.arange(len(members)) + rng.random()) / len(members)
    return np.argsort(position, kind="stable")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; the same labels and seed always give the same split."""
    order = stratified_order(labels, seed)
    n_val = min(len(labels) - 1, max(1, round(val_fraction * len(labels))))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def limit_indices(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a stratified subset of at most ``limit`` examples (all when None)."""
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    return np.sort(stratified_order(labels, seed + 1)[:limit])


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` float images to ``size x size`` (antialiased when shrinking)."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < max(images.shape[-2:])
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, C, H, W)`` images (std floored to avoid dividing by 0)."""
    flat = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    mean = flat.mean(dim=1)
    std = flat.std(dim=1).clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def normalise(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - m) / s


def splits_from_arrays(
    request: DataRequest,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor] | None,
    *,
    num_classes: int,
    default_size: int,
    default_val_fraction: float = 0.2,
    classes: tuple[str, ...] = (),
) -> DataSplits:
    """Images in [0, 1] as ``(N, C, H, W)`` (+ labels) → normalised in-memory splits.

    Validation is the official test split when there is one and no ``val_fraction`` was asked
    for; otherwise a seeded stratified slice of the training data. ``limit`` caps the training
    split only. Mean and std come from the training split.
    """
    if request.in_memory is False:
        raise UserError(f"data set {request.name!r} is held in memory; in_memory=False applies to "
                        "imagefolder only (make_loader(num_workers=...) streams any data set)")
    x, y = train
    if test is None or request.val_fraction is not None:
        fraction = request.val_fraction if request.val_fraction is not None else default_val_fraction
        train_idx, val_idx = map(torch.from_numpy, stratified_split(y.numpy(), fraction, request.seed))
        (x, y), (vx, vy) = (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
    else:
        vx, vy = test
    keep = torch.from_numpy(limit_indices(y.numpy(), request.limit, request.seed))
    x, y = x[keep], y[keep]
    size = request.image_size or default_size
    check_memory(request, len(x) + len(vx), x.shape[1], size)
    x, vx = resize(x.float(), size), resize(vx.float(), size)
    mean, std = channel_stats(x)
    return DataSplits(
        name=request.name,
        train=InMemoryDataset(normalise(x, mean, std), y),
        val=InMemoryDataset(normalise(vx, mean, std), vy),
        num_classes=num_classes, in_channels=x.shape[1], image_size=size,
        mean=mean, std=std, classes=classes,
    )


def check_options(request: DataRequest, allowed: Mapping[str, Any],
                  limits: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Any]:
    """``request.options`` over the defaults in ``allowed``; an unknown option, a value of
    another type than its default's (``count: x``, ``count: true``) or outside its ``limits``
    ``(lo, hi)`` is a UserError."""
    unknown = sorted(set(request.options) - set(allowed), key=str)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise UserError(f"dataset {request.name}: unknown option(s) "
                        f"{', '.join(clip(str(u), 60) for u in unknown[:10])} (allowed: {known})")
    for key, value in request.options.items():
        default = allowed[key]
        kind = "an integer" if isinstance(default, int) else "a number"
        ok = (isinstance(value, int) if isinstance(default, int) else
              isinstance(value, (int, float)) and math.isfinite(value))
        if isinstance(value, bool) or not ok:
            raise UserError(f"dataset {request.name}: option {key} must be {kind}, "
                            f"got {shown(value)}")
        lo, hi = (limits or {}).get(key, (-math.inf, math.inf))
        if not lo <= value <= hi:
            raise UserError(f"dataset {request.name}: option {key} must be in [{lo:g}, {hi:g}], "
                            f"got {shown(value)}")
    return {**allowed, **request.options}


def check_memory(request: DataRequest, count: int, channels: int, size: int) -> None:
    """Refuse, before resizing, images that would not fit in memory (float32, twice: resized and
    normalised)."""
    need = count * channels * size * size * 4 * 2
    available = memory.available_bytes()
    if available is not None and need > available:
        raise memory.TooLarge(
            f"dataset {request.name}: {count:,} images of {channels}x{size}x{size} need an "
            f"estimated {memory.gib(need)} in memory, but only {memory.gib(available)} is "
            "available; lower recipe.data.image_size or set recipe.data.limit")
