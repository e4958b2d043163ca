"""Batches for training: in-memory tensors on the device with vectorised augmentation, or a
DataLoader with workers for data that does not fit (``make_loader`` picks)."""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from resbench.data._splits import InMemoryDataset
from resbench.errors import UserError

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop after ``crop_padding`` zero pixels per side (0 = off),
    and a random horizontal flip. Padding is zero in normalised units (the mean colour)."""

    crop_padding: int = 0
    flip: bool = False

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.flip

    @classmethod
    def coerce(cls, value: Any) -> Augment:
        """An ``Augment`` from None, a mapping (``crop_padding``, ``flip``), or the recipe's
        augment config (``random_crop``, ``padding``, ``hflip``)."""
        if value is None or value is False:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"crop_padding", "flip"})
            if unknown:
                raise UserError(f"augment: unknown field(s) {', '.join(unknown)} (allowed: crop_padding, flip)")
            aug = cls(**value)
        elif all(hasattr(value, f) for f in ("random_crop", "padding", "hflip")):
            aug = cls(crop_padding=int(value.padding) if value.random_crop else 0, flip=bool(value.hflip))
        else:
            raise UserError(f"augment: expected a mapping with crop_padding/flip, got {value!r}")
        if not isinstance(aug.crop_padding, int) or aug.crop_padding < 0:
            raise UserError(f"augment.crop_padding must be an integer >= 0, got {aug.crop_padding!r}")
        return aug


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crops of a batch, as two gathers from the zero-padded batch (no Python loop)."""
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None].expand(b, c, h, w + 2 * padding)
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :].expand(b, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the batch left-right."""
    mask = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def augment_batch(x: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    if augment.crop_padding:
        x = random_crop(x, augment.crop_padding, generator)
    if augment.flip:
        x = random_flip(x, generator)
    return x


class InMemoryLoader:
    """Batches from tensors held on ``device``: shuffling and augmentation run there, vectorised.

    Create it once: the tensors move to the device once, and each pass over it (an epoch)
    draws a new order and new augmentations from its seeded generator.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool = False, augment: Augment | Mapping[str, Any] | None = None,
                 device: torch.device | str = "cpu", seed: int = 0, drop_last: bool = False,
                 channels_last: bool = False) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = Augment.coerce(augment)
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = self.images.shape[0]
        order = torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle else None
        for i in range(len(self)):
            index = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is not None:
                index = order[index]
            x, y = self.images[index], self.labels[index]
            if self.augment.active:
                x = augment_batch(x, self.augment, self.generator)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y


class _Augmented(Dataset):
    """Per-sample augmentation with torchvision transforms, the usual DataLoader way."""

    def __init__(self, dataset: Dataset, augment: Augment) -> None:
        from torchvision.transforms import v2

        self.dataset = dataset
        steps = []
        if augment.crop_padding:
            steps.append(v2.RandomCrop(_image_hw(dataset), padding=augment.crop_padding, fill=0))
        if augment.flip:
            steps.append(v2.RandomHorizontalFlip())
        self.transform = v2.Compose(steps)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.dataset[index]
        return self.transform(x), y


def _image_hw(dataset: Dataset) -> list[int]:
    x, _ = dataset[0]
    return list(x.shape[-2:])


class DeviceLoader:
    """A DataLoader whose batches are moved to ``device`` (and to channels_last when asked)."""

    def __init__(self, loader: DataLoader, device: torch.device, channels_last: bool) -> None:
        self.loader = loader
        self.device = device
        self.channels_last = channels_last

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, augment: Any,
                device: torch.device | str, seed: int, channels_last: bool = False,
                num_workers: int | None = None) -> InMemoryLoader | DeviceLoader:
    """Batches of ``dataset`` on ``device``: shuffled, augmented and without a ragged last batch
    when ``train`` (the last batch is kept when the set is smaller than one batch).

    An ``InMemoryDataset`` goes through ``InMemoryLoader`` unless ``num_workers`` is given;
    anything else (files on disk) through a ``DataLoader`` with ``num_workers`` (default:
    up to 4, one per core) and the same augmentation as torchvision transforms.
    """
    device = torch.device(device)
    aug = Augment.coerce(augment) if train else Augment()
    drop_last = train and len(dataset) > batch_size  # type: ignore[arg-type]
    if isinstance(dataset, InMemoryDataset) and num_workers is None:
        return InMemoryLoader(dataset.images, dataset.labels, batch_size, shuffle=train, augment=aug,
                              device=device, seed=seed, drop_last=drop_last,
                              channels_last=channels_last)
    workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    loader = DataLoader(
        _Augmented(dataset, aug) if aug.active else dataset, batch_size=batch_size, shuffle=train,
        num_workers=workers, drop_last=drop_last, pin_memory=device.type == "cuda",
        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    return DeviceLoader(loader, device, channels_last)
