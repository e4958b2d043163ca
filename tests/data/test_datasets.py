"""Built-in data sets (digits, synthetic), splits, options and errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from resbench.data import DATASETS, load_dataset, make_loader, stratified_split
from resbench.errors import UserError


def test_registry_knows_every_documented_dataset():
    assert set(DATASETS.names()) == {"digits", "synthetic", "cifar10", "cifar100", "mnist",
                                     "fashion_mnist", "svhn", "imagefolder"}


def test_digits_default_shapes_and_normalisation():
    d = load_dataset("digits")
    assert (d.name, d.num_classes, d.in_channels, d.image_size) == ("digits", 10, 1, 16)
    assert len(d.train) + len(d.val) == 1797
    assert len(d.val) == round(0.2 * 1797)
    assert d.train.images.shape == (len(d.train), 1, 16, 16)
    assert abs(d.train.images.mean().item()) < 1e-4
    assert abs(d.train.images.std().item() - 1) < 1e-3
    assert d.classes == tuple("0123456789")
    # The stored mean/std undo the normalisation back to [0, 1] pixel values.
    raw = d.train.images * d.std[0] + d.mean[0]
    assert raw.min().item() >= -1e-5 and raw.max().item() <= 1 + 1e-5


def test_digits_split_is_seeded_and_stratified():
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    assert torch.equal(a.val.images, b.val.images) and torch.equal(a.train.labels, b.train.labels)
    c = load_dataset("digits", seed=4)
    assert not torch.equal(a.val.images, c.val.images)
    counts = torch.bincount(a.val.labels, minlength=10).numpy()
    totals = counts + torch.bincount(a.train.labels, minlength=10).numpy()
    assert np.all(np.abs(counts - 0.2 * totals) <= 1)


def test_split_is_disjoint_and_exact():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    train, val = stratified_split(labels, 0.25, seed=0)
    assert len(val) == 25 and len(train) == 75
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(range(100))
    assert list(np.bincount(labels[val])) in ([13, 7, 5], [12, 8, 5], [13, 8, 4], [12, 7, 6])


def test_digits_options_image_size_val_fraction_limit():
    d = load_dataset("digits", image_size=8, val_fraction=0.5, limit=100)
    assert d.image_size == 8 and d.train.images.shape[1:] == (1, 8, 8)
    assert len(d.train) == 100 and len(d.val) == round(0.5 * 1797)
    assert torch.bincount(d.train.labels, minlength=10).min().item() >= 9  # stratified subset


def test_same_seed_gives_same_split_in_a_fresh_process():
    code = ("import json, sys; from resbench.data import load_dataset; d = load_dataset('digits', seed=7); "
            "print(json.dumps([d.val.labels.tolist(), float(d.val.images.sum()), "
            "'torchvision' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    labels, total, imported_torchvision = json.loads(out.stdout)
    here = load_dataset("digits", seed=7)
    # The same split as here (the sum differs only in float rounding with the thread count),
    # and torchvision was not imported for a set that does not need it.
    assert labels == here.val.labels.tolist()
    assert total == pytest.approx(float(here.val.images.sum()), rel=1e-5)
    assert not imported_torchvision


def test_unknown_dataset_lists_names_and_suggests():
    # The one "unknown name" message of resbench.errors.unknown, as for a spec's fields.
    with pytest.raises(UserError, match=r"unknown dataset 'cifar' \(allowed: cifar10, cifar100, "
                                        r"digits.*\); did you mean 'cifar10'\?"):
        load_dataset("cifar")


@pytest.mark.parametrize("kwargs, message", [
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"image_size": 0}, "image_size must be a positive integer"),
    ({"limit": -3}, "limit must be a positive integer"),
    ({"options": {"colours": 3}}, r"unknown option\(s\) colours"),
    ({"in_memory": False}, "in_memory=False applies to imagefolder only"),
])
def test_bad_arguments_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        load_dataset("digits", **kwargs)


def test_synthetic_options_and_determinism():
    opts = {"num_classes": 4, "channels": 3, "count": 400}
    d = load_dataset("synthetic", image_size=12, seed=1, options=opts)
    assert (d.num_classes, d.in_channels, d.image_size) == (4, 3, 12)
    assert len(d.train) == 320 and len(d.val) == 80
    assert torch.bincount(d.train.labels).tolist() == [80, 80, 80, 80]
    again = load_dataset("synthetic", image_size=12, seed=1, options=opts)
    assert torch.equal(d.train.images, again.train.images)
    other = load_dataset("synthetic", image_size=12, seed=2, options=opts)
    assert not torch.equal(d.train.images, other.train.images)
    with pytest.raises(UserError, match="num_classes >= 2"):
        load_dataset("synthetic", options={"num_classes": 1})


def test_tiny_network_learns_synthetic_well_above_chance():
    torch.manual_seed(0)
    d = load_dataset("synthetic", seed=0, options={"count": 1200})
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, d.num_classes))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loader = make_loader(d.train, 32, train=True, augment=None, device="cpu", seed=0)
    for _ in range(3):
        for x, y in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(d.val.images).argmax(1) == d.val.labels).float().mean().item()
    assert acc > 0.6, f"val accuracy {acc:.3f} (chance is 0.1)"


@pytest.mark.parametrize("options, fragment", [
    ({"count": "x"}, "option count must be an integer, got 'x'"),
    ({"count": True}, "option count must be an integer, got True"),
    ({"count": 10.5}, "option count must be an integer"),
    ({"noise": float("nan")}, "option noise must be a number"),
    ({"count": 10**12}, "option count must be in"),
    ({"num_classes": 10**9}, "option num_classes must be in"),
])
def test_data_set_options_have_their_defaults_types_and_bounds(options, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        load_dataset("synthetic", options=options)


def test_images_that_cannot_fit_in_memory_are_refused_before_resizing():
    with pytest.raises(UserError, match=r"1,797 images of 1x16384x16384 need an estimated"):
        load_dataset("digits", image_size=16384)
