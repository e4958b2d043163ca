"""Batching: the in-memory loader, vectorised augmentation, and the DataLoader path."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resbench.data import (
    Augment,
    DeviceLoader,
    InMemoryDataset,
    InMemoryLoader,
    augment_batch,
    make_loader,
)
from resbench.data._loaders import _Augmented
from resbench.errors import UserError


def distinct_images(n: int = 40, c: int = 2, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.arange(n * c * size * size, dtype=torch.float32).view(n, c, size, size) + 1
    return images, torch.arange(n) % 5


def crop_offset(out: torch.Tensor, src: torch.Tensor, padding: int) -> tuple[int, int] | None:
    """Where in the zero-padded source ``out`` was cut from, or None if from nowhere."""
    padded = F.pad(src, (padding,) * 4)
    h, w = src.shape[-2:]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            if torch.equal(padded[:, dy:dy + h, dx:dx + w], out):
                return dy, dx
    return None


def test_each_epoch_yields_every_example_once_in_a_new_seeded_order():
    images, labels = distinct_images()
    loader = InMemoryLoader(images, labels, 16, shuffle=True, seed=1)
    assert len(loader) == 3
    epochs = [torch.cat([x[:, 0, 0, 0] for x, _ in loader]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == sorted(images[:, 0, 0, 0].tolist())
    assert not torch.equal(epochs[0], epochs[1])
    again = InMemoryLoader(images, labels, 16, shuffle=True, seed=1)
    assert torch.equal(torch.cat([x[:, 0, 0, 0] for x, _ in again]), epochs[0])
    for x, y in loader:  # labels travel with their images
        assert torch.equal(y, labels[((x[:, 0, 0, 0] - 1) / (2 * 36)).long()])


def test_drop_last_and_no_shuffle():
    images, labels = distinct_images(40)
    assert len(InMemoryLoader(images, labels, 16, drop_last=True)) == 2
    plain = InMemoryLoader(images, labels, 16)
    assert torch.equal(torch.cat([x for x, _ in plain]), images)


def test_random_crop_cuts_each_image_from_its_padded_self_at_varied_offsets():
    images, _ = distinct_images(64)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(images, Augment(crop_padding=2), g)
    assert out.shape == images.shape
    offsets = [crop_offset(out[i], images[i], 2) for i in range(64)]
    assert None not in offsets
    assert len(set(offsets)) > 10  # per-sample offsets, not one for the whole batch


def test_random_flip_mirrors_about_half():
    images, _ = distinct_images(200)
    out = augment_batch(images, Augment(flip=True), torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, x.flip(2)) for o, x in zip(out, images)])
    kept = torch.tensor([torch.equal(o, x) for o, x in zip(out, images)])
    assert torch.all(flipped ^ kept)
    assert 60 < int(flipped.sum()) < 140


def test_channels_last_batches():
    images, labels = distinct_images(8)
    x, _ = next(iter(InMemoryLoader(images, labels, 4, augment={"crop_padding": 1, "flip": True},
                                    channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_augment_coerce():
    from resbench.spec.recipe import AugmentConfig

    assert Augment.coerce(None) == Augment()
    assert Augment.coerce({"crop_padding": 4, "flip": True}) == Augment(4, True)
    assert Augment.coerce(AugmentConfig(random_crop=True, padding=2, hflip=True)) == Augment(2, True)
    assert Augment.coerce(AugmentConfig(random_crop=False, hflip=True)) == Augment(0, True)
    with pytest.raises(UserError, match="unknown field"):
        Augment.coerce({"crop": 4})
    with pytest.raises(UserError, match="crop_padding must be"):
        Augment.coerce({"crop_padding": -1})


def test_make_loader_picks_memory_or_dataloader():
    images, labels = distinct_images(20)
    data = InMemoryDataset(images, labels)
    train = make_loader(data, 8, train=True, augment={"flip": True}, device="cpu", seed=0)
    assert isinstance(train, InMemoryLoader) and train.augment.flip and len(train) == 2
    val = make_loader(data, 8, train=False, augment={"flip": True}, device="cpu", seed=0)
    assert isinstance(val, InMemoryLoader) and not val.augment.active
    assert torch.equal(torch.cat([x for x, _ in val]), images)  # in order, untouched, all kept
    streamed = make_loader(data, 8, train=False, augment=None, device="cpu", seed=0, num_workers=0)
    assert isinstance(streamed, DeviceLoader) and len(streamed) == 3
    assert torch.equal(torch.cat([x for x, _ in streamed]), images)
    small = make_loader(InMemoryDataset(images[:5], labels[:5]), 8, train=True, augment=None,
                        device="cpu", seed=0)
    assert sum(len(y) for _, y in small) == 5  # a set smaller than a batch still trains


def test_dataloader_path_augments_per_sample_like_the_memory_path():
    images, labels = distinct_images(16)
    data = _Augmented(InMemoryDataset(images, labels), Augment(crop_padding=2, flip=True))
    for i in range(16):
        out, label = data[i]
        assert label == labels[i]
        src = images[i]
        assert crop_offset(out, src, 2) is not None or crop_offset(out.flip(2), src, 2) is not None
    loader = make_loader(InMemoryDataset(images, labels), 4, train=True, augment={"crop_padding": 2},
                         device="cpu", seed=0, num_workers=1, channels_last=True)
    batches = list(loader)
    assert len(batches) == 4 and batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(labels.tolist())
