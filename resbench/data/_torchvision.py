"""Data sets read from a local root through ``torchvision.datasets`` (imported lazily, here only).

Files are downloaded only with ``download=True``, through torchvision's own download (which
checks the archive's md5). Without it, existing files are read as they are: the md5 check of every
file is skipped, so that a copy made elsewhere (or a small test file in the same format) loads.
"""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from resbench.data._splits import (
    DataRequest,
    DataSplits,
    InMemoryDataset,
    channel_stats,
    check_options,
    limit_indices,
    normalise,
    resize,
    splits_from_arrays,
    stratified_split,
)
from resbench.errors import UserError, shown

DEFAULT_ROOT = Path("data")
# imagefolder data estimated above this many bytes (as float32 tensors) is streamed from disk.
MEMORY_BUDGET_BYTES = 2 * 1024**3
IMAGEFOLDER_SIZE = 64
_READ_ERRORS = (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError)


def _root(request: DataRequest) -> Path:
    return (request.root or DEFAULT_ROOT).resolve()


def _missing(request: DataRequest, where: Path, expected: str, error: Exception) -> UserError:
    problem = ("files not found" if isinstance(error, RuntimeError) and "not found" in str(error)
               else f"cannot read the files ({type(error).__name__}: {error})")
    return UserError(
        f"dataset {request.name}: {problem} under {where} (expected {expected}). To download "
        f"them there, set `download: true` in the recipe's data section "
        f"(load_dataset(..., download=True)), or point `root` at an existing copy")


def _open(request: DataRequest, make: Callable[[bool], Any], expected: str) -> Any:
    """Build a torchvision data set, turning "not found"/"corrupt" into a UserError with a fix."""
    try:
        return make(request.download)
    except _READ_ERRORS as e:
        raise _missing(request, _root(request), expected, e) from None


def _uint8_images(data: Any, hwc: bool) -> torch.Tensor:
    """uint8 ``(N, H, W)``, ``(N, H, W, C)`` (hwc) or ``(N, C, H, W)`` → float ``(N, C, H, W)`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(data))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif hwc:
        x = x.permute(0, 3, 1, 2)
    return x.float().div_(255.0)


def _labels(targets: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(targets), dtype=torch.int64)


# CIFAR ------------------------------------------------------------------------------------------
def _cifar(request: DataRequest, hundred: bool) -> DataSplits:
    from torchvision import datasets

    check_options(request, {})
    stock = datasets.CIFAR100 if hundred else datasets.CIFAR10

    class ExistingFiles(stock):  # type: ignore[misc, valid-type]
        """The same reader, checking that the files exist rather than their md5."""

        train_list = [[name, None] for name, _ in stock.train_list]
        test_list = [[name, None] for name, _ in stock.test_list]
        meta = {**stock.meta, "md5": None}

    def make(download: bool) -> tuple[Any, Any]:
        cls = stock if download else ExistingFiles
        root = str(_root(request))
        return cls(root, train=True, download=download), cls(root, train=False, download=False)

    folder = stock.base_folder
    names = [n for n, _ in stock.train_list + stock.test_list] + [stock.meta["filename"]]
    train, test = _open(request, make, f"{folder}/ with {', '.join(names)}")
    return splits_from_arrays(
        request, (_uint8_images(train.data, True), _labels(train.targets)),
        (_uint8_images(test.data, True), _labels(test.targets)),
        num_classes=100 if hundred else 10, default_size=32, classes=tuple(train.classes))


def cifar10(request: DataRequest) -> DataSplits:
    """CIFAR-10 from ``<root>/cifar-10-batches-py/`` (python pickle batches); val = test batch."""
    return _cifar(request, hundred=False)


def cifar100(request: DataRequest) -> DataSplits:
    """CIFAR-100 (fine labels) from ``<root>/cifar-100-python/``; val = test set."""
    return _cifar(request, hundred=True)


# MNIST family -----------------------------------------------------------------------------------
def _mnist(request: DataRequest, fashion: bool) -> DataSplits:
    from torchvision import datasets

    check_options(request, {})
    cls = datasets.FashionMNIST if fashion else datasets.MNIST
    root = str(_root(request))

    def make(download: bool) -> tuple[Any, Any]:
        return cls(root, train=True, download=download), cls(root, train=False, download=False)

    expected = (f"{cls.__name__}/raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (uncompressed idx files)")
    train, test = _open(request, make, expected)
    return splits_from_arrays(
        request, (_uint8_images(train.data, False), _labels(train.targets)),
        (_uint8_images(test.data, False), _labels(test.targets)),
        num_classes=10, default_size=28, classes=tuple(train.classes))


def mnist(request: DataRequest) -> DataSplits:
    """MNIST from ``<root>/MNIST/raw/`` idx files; val = the 10k test set."""
    return _mnist(request, fashion=False)


def fashion_mnist(request: DataRequest) -> DataSplits:
    """Fashion-MNIST from ``<root>/FashionMNIST/raw/`` idx files; val = the 10k test set."""
    return _mnist(request, fashion=True)


# SVHN -------------------------------------------------------------------------------------------
def svhn(request: DataRequest) -> DataSplits:
    """SVHN (cropped digits) from ``<root>/train_32x32.mat`` and ``test_32x32.mat``; label 10 → 0."""
    from torchvision import datasets

    check_options(request, {})
    stock = datasets.SVHN

    class ExistingFiles(stock):  # type: ignore[misc, valid-type]
        """The same reader, checking that the file exists rather than its md5."""

        split_list = {k: [url, name, None] for k, (url, name, _) in stock.split_list.items()}

    def make(download: bool) -> tuple[Any, Any]:
        cls = stock if download else ExistingFiles
        root = str(_root(request))
        return cls(root, split="train", download=download), cls(root, split="test", download=download)

    train, test = _open(request, make, "train_32x32.mat and test_32x32.mat")
    return splits_from_arrays(
        request, (_uint8_images(train.data, False), _labels(train.labels)),
        (_uint8_images(test.data, False), _labels(test.labels)),
        num_classes=10, default_size=32, classes=tuple(str(d) for d in range(10)))


# Image folders ----------------------------------------------------------------------------------
def imagefolder(request: DataRequest) -> DataSplits:
    """Class-per-subfolder images (RGB): ``<root>/train`` + ``<root>/val``, or one folder split by seed.

    As for the other sets, a ``val_fraction`` carves validation out of the training images
    instead of using ``val/``.

    Held in memory when the resized images fit ``MEMORY_BUDGET_BYTES`` (or ``in_memory=True``),
    otherwise decoded from disk per batch by a DataLoader (``in_memory=False`` forces that).
    """
    from torchvision import datasets

    check_options(request, {})
    if request.root is None:
        raise UserError("dataset imagefolder needs `root`: a folder of class subfolders, or one "
                        "holding train/ and val/ folders of class subfolders")
    root = _root(request)
    size = request.image_size or IMAGEFOLDER_SIZE

    def folder(path: Path) -> Any:
        # torchvision's messages list the folder's subfolders: never quoted (root may be any
        # folder, and a user error must not list its contents).
        try:
            return datasets.ImageFolder(str(path))
        except FileNotFoundError:
            raise UserError(f"dataset imagefolder: {path} has no class subfolders holding "
                            "images (.jpg, .png, ...)") from None
        except OSError as e:
            raise UserError(f"dataset imagefolder: cannot read {path}: "
                            f"{e.strerror or type(e).__name__}") from None

    if not root.is_dir():
        raise UserError(f"dataset imagefolder: root {root} is not a folder")
    split_folders = (root / "train").is_dir() and (root / "val").is_dir()
    train_set = folder(root / "train" if split_folders else root)
    if split_folders and request.val_fraction is None:
        val_set = folder(root / "val")
        if val_set.classes != train_set.classes:
            only = sorted(set(val_set.classes) ^ set(train_set.classes))
            example = f", e.g. {shown(only[0], 60)}" if only else " (in another order)"
            raise UserError(f"dataset imagefolder: {root / 'val'} and {root / 'train'} must have "
                            f"the same class subfolders, but {len(only)} differ{example}")
        train_idx, val_idx = np.arange(len(train_set)), np.arange(len(val_set))
    else:
        val_set = train_set
        train_idx, val_idx = stratified_split(np.asarray(train_set.targets),
                                              request.val_fraction or 0.2, request.seed)
    targets = np.asarray(train_set.targets)
    train_idx = train_idx[limit_indices(targets[train_idx], request.limit, request.seed)]
    channels = 3
    fits = (len(train_idx) + len(val_idx)) * channels * size * size * 4 <= MEMORY_BUDGET_BYTES
    in_memory = fits if request.in_memory is None else request.in_memory
    classes = tuple(train_set.classes)

    if in_memory:
        x, y = _decode(train_set, train_idx, size)
        vx, vy = _decode(val_set, val_idx, size)
        mean, std = channel_stats(x)
        train: Dataset = InMemoryDataset(normalise(x, mean, std), y)
        val: Dataset = InMemoryDataset(normalise(vx, mean, std), vy)
    else:
        sample = train_idx[limit_indices(targets[train_idx], 256, request.seed)]
        mean, std = channel_stats(_decode(train_set, sample, size)[0])
        transform = _file_transform(size, mean, std)
        train = Subset(datasets.ImageFolder(str(train_set.root), transform=transform), train_idx.tolist())
        val = Subset(datasets.ImageFolder(str(val_set.root), transform=transform), val_idx.tolist())
    return DataSplits(name=request.name, train=train, val=val, num_classes=len(classes),
                      in_channels=channels, image_size=size, mean=mean, std=std, classes=classes)


def _file_transform(size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> Callable:
    """PIL image → resized, normalised float tensor (what the in-memory path stores)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                       v2.Resize((size, size), antialias=True), v2.Normalize(mean, std)])


def _decode(folder: Any, indices: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read, convert to RGB, and resize the given images of an ImageFolder into one tensor."""
    from torchvision.transforms.v2 import functional as TF

    images = torch.empty(len(indices), 3, size, size)
    labels = torch.empty(len(indices), dtype=torch.int64)
    for row, i in enumerate(indices.tolist()):
        path, label = folder.samples[i]
        try:
            img = TF.to_dtype(TF.to_image(folder.loader(path)), torch.float32, scale=True)
        except OSError as e:
            raise UserError(f"dataset imagefolder: cannot read image {path}: {e}") from None
        images[row] = resize(img.unsqueeze(0), size)[0]
        labels[row] = label
    return images, labels
