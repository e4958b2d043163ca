"""The data set table (``DATASETS``), ``load_dataset``, and the two built-in sets that need no files:
``digits`` (scikit-learn's bundled 8x8 digits) and ``synthetic`` (seeded procedural images)."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from resbench.data import _torchvision as tv
from resbench.data._splits import (
    DataRequest,
    DataSplits,
    check_memory,
    check_options,
    splits_from_arrays,
)
from resbench.errors import UserError
from resbench.registry import Registry

Loader = Callable[[DataRequest], DataSplits]


def load_dataset(
    name: str,
    *,
    root: str | Path | None = None,
    image_size: int | None = None,
    seed: int = 0,
    val_fraction: float | None = None,
    download: bool = False,
    limit: int | None = None,
    in_memory: bool | None = None,
    options: Mapping[str, Any] | None = None,
) -> DataSplits:
    """Load data set ``name`` as train/validation splits (see ``DATASETS.names()`` for the names).

    ``seed`` fixes the validation split and any subsampling; ``limit`` caps the training split;
    ``options`` are data-set specific (e.g. ``synthetic``'s ``num_classes``).
    """
    loader = DATASETS.get(name)  # an unknown name lists the known ones
    _check_positive("image_size", image_size)
    _check_positive("limit", limit)
    if val_fraction is not None and not 0 < val_fraction < 1:
        raise UserError(f"dataset {name}: val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}")
    request = DataRequest(name=name, root=Path(root).expanduser() if root is not None else None,
                          image_size=image_size, seed=int(seed), val_fraction=val_fraction,
                          download=bool(download), limit=limit, in_memory=in_memory,
                          options=dict(options or {}))
    return loader(request)


def _check_positive(field: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise UserError(f"{field} must be a positive integer, got {value!r}")


def digits(request: DataRequest) -> DataSplits:
    """scikit-learn's 1,797 bundled 8x8 handwritten digits, upsampled (default 16x16), 20% val."""
    from sklearn.datasets import load_digits

    check_options(request, {})
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    return splits_from_arrays(request, (images, labels), None, num_classes=10, default_size=16,
                              classes=tuple(str(d) for d in range(10)))


SYNTHETIC_DEFAULTS = {"num_classes": 10, "channels": 1, "count": 2000, "noise": 0.3}
# Upper bounds (make_synthetic checks the lower ones, and check_memory the product).
SYNTHETIC_LIMITS = {"num_classes": (-math.inf, 100_000), "channels": (-math.inf, 1024),
                    "count": (-math.inf, 10**8), "noise": (0, 1e6)}


def synthetic(request: DataRequest) -> DataSplits:
    """Seeded procedural images (see ``make_synthetic``); options: num_classes, channels, count, noise."""
    opts = check_options(request, SYNTHETIC_DEFAULTS, SYNTHETIC_LIMITS)
    size = request.image_size or 16
    check_memory(request, int(opts["count"]), int(opts["channels"]), size)
    images, labels = make_synthetic(int(opts["count"]), int(opts["num_classes"]), size,
                                    int(opts["channels"]), seed=request.seed,
                                    noise=float(opts["noise"]))
    return splits_from_arrays(request, (images, labels), None, num_classes=int(opts["num_classes"]),
                              default_size=size)


def make_synthetic(count: int, num_classes: int, image_size: int, channels: int, *, seed: int = 0,
                   noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable images: stripes whose orientation and frequency depend on the class, a blob at a
    class-dependent place, random phase, jitter and Gaussian noise; classes also tint the channels.

    Returns float images ``(count, channels, size, size)`` in [0, 1] and balanced int64 labels.
    """
    if num_classes < 2 or channels < 1 or count < 2 * num_classes or image_size < 4:
        raise UserError("synthetic data needs num_classes >= 2, channels >= 1, "
                        f"count >= 2 * num_classes and image_size >= 4, got num_classes={num_classes}, "
                        f"channels={channels}, count={count}, image_size={image_size}")
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(count) % num_classes)[torch.randperm(count, generator=g)]
    k = labels.float()[:, None, None]
    axis = torch.linspace(-1, 1, image_size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    # Classes differ in stripe orientation (half as many angles as classes) and frequency.
    angles = math.ceil(num_classes / 2)
    step = math.pi / angles
    theta = (k % angles) * step + (torch.rand(count, 1, 1, generator=g) - 0.5) * step * 0.3
    cycles = torch.where(k < angles, 1.0, 2.5)
    phase = torch.rand(count, 1, 1, generator=g) * 2 * math.pi
    stripes = torch.sin(math.pi * cycles * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)
    angle = k * 2 * math.pi / num_classes
    cx = 0.5 * torch.cos(angle) + 0.1 * torch.randn(count, 1, 1, generator=g)
    cy = 0.5 * torch.sin(angle) + 0.1 * torch.randn(count, 1, 1, generator=g)
    blob = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.18)
    pattern = stripes + 0.8 * blob
    tint = 0.6 + 0.4 * torch.cos(2 * math.pi * (k[..., None] / num_classes
                                               + torch.arange(channels).view(1, -1, 1, 1) / channels))
    images = pattern[:, None] * tint + noise * torch.randn(count, channels, image_size, image_size,
                                                          generator=g)
    lo = images.amin(dim=(1, 2, 3), keepdim=True)
    hi = images.amax(dim=(1, 2, 3), keepdim=True)
    return (images - lo) / (hi - lo), labels


# Every data set, by the name recipes use (``recipe.data.name``). A new one is a loader
# function and a line here.
DATASETS: Registry[Loader] = Registry("dataset", {
    "digits": digits,
    "synthetic": synthetic,
    "cifar10": tv.cifar10,
    "cifar100": tv.cifar100,
    "mnist": tv.mnist,
    "fashion_mnist": tv.fashion_mnist,
    "svhn": tv.svhn,
    "imagefolder": tv.imagefolder,
})
