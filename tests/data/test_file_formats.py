"""The torchvision-backed loaders, run on small files written here in each set's real format."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resbench.data import InMemoryDataset, load_dataset, make_loader
from resbench.errors import UserError

RNG = np.random.default_rng(0)


def raw_pixels(split, index: int) -> torch.Tensor:
    """Undo the normalisation: back to the [0, 255] pixel values of the file."""
    mean = torch.tensor(split.mean).view(-1, 1, 1)
    std = torch.tensor(split.std).view(-1, 1, 1)
    return (split.train.images[index] * std + mean) * 255


def write_pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def cifar_images(n: int) -> np.ndarray:
    """Rows of 3072 bytes, channel-major (R plane, G plane, B plane), as in the CIFAR batches."""
    return RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    batches = []
    for i in range(1, 6):
        data, labels = cifar_images(4), [(i + j) % 10 for j in range(4)]
        batches.append((data, labels))
        write_pickle(folder / f"data_batch_{i}", {"data": data, "labels": labels})
    write_pickle(folder / "test_batch", {"data": cifar_images(6), "labels": list(range(6))})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_pickle(folder / "batches.meta", {"label_names": names})

    d = load_dataset("cifar10", root=tmp_path)
    assert (d.num_classes, d.in_channels, d.image_size, d.classes) == (10, 3, 32, tuple(names))
    assert len(d.train) == 20 and len(d.val) == 6
    first = torch.tensor(batches[0][0][1].reshape(3, 32, 32), dtype=torch.float32)
    assert torch.allclose(raw_pixels(d, 1), first, atol=1e-3)
    assert d.train.labels.tolist()[:4] == batches[0][1]
    assert d.val.labels.tolist() == list(range(6))
    carved = load_dataset("cifar10", root=tmp_path, val_fraction=0.25)
    assert len(carved.train) == 15 and len(carved.val) == 5


def test_cifar100_python_files(tmp_path):
    folder = tmp_path / "cifar-100-python"
    fine = [0, 99, 5, 42, 7, 1, 2, 3]
    write_pickle(folder / "train", {"data": cifar_images(8), "fine_labels": fine,
                                    "coarse_labels": [f // 5 for f in fine]})
    write_pickle(folder / "test", {"data": cifar_images(3), "fine_labels": [4, 5, 6],
                                   "coarse_labels": [0, 1, 1]})
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)],
                                   "coarse_label_names": [f"s{i}" for i in range(20)]})
    d = load_dataset("cifar100", root=tmp_path, image_size=16)
    assert (d.num_classes, d.image_size, len(d.classes)) == (100, 16, 100)
    assert d.train.images.shape == (8, 3, 16, 16)
    assert d.train.labels.tolist() == fine and d.val.labels.tolist() == [4, 5, 6]


def write_idx(raw: Path, prefix: str, images: np.ndarray, labels: np.ndarray) -> None:
    """MNIST's idx format: big-endian magic (0x0803 images, 0x0801 labels), sizes, then bytes."""
    raw.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, h, w) + images.tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_idx_files(tmp_path, name, folder):
    train = RNG.integers(0, 256, size=(12, 28, 28), dtype=np.uint8)
    labels = (np.arange(12) % 10).astype(np.uint8)
    write_idx(tmp_path / folder / "raw", "train", train, labels)
    write_idx(tmp_path / folder / "raw", "t10k", RNG.integers(0, 256, size=(5, 28, 28), dtype=np.uint8),
              np.arange(5, dtype=np.uint8))
    d = load_dataset(name, root=tmp_path)
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 1, 28)
    assert len(d.train) == 12 and len(d.val) == 5
    assert torch.allclose(raw_pixels(d, 3)[0], torch.tensor(train[3], dtype=torch.float32), atol=1e-3)
    assert d.train.labels.tolist() == labels.tolist()


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    x = RNG.integers(0, 256, size=(32, 32, 3, 7), dtype=np.uint8)  # H, W, C, N as in the .mat
    y = np.array([[1], [10], [3], [10], [5], [6], [7]], dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    savemat(tmp_path / "test_32x32.mat", {"X": x[..., :4], "y": y[:4]})
    d = load_dataset("svhn", root=tmp_path)
    assert (d.num_classes, d.in_channels, d.image_size) == (10, 3, 32)
    assert d.train.labels.tolist() == [1, 0, 3, 0, 5, 6, 7]  # SVHN's label 10 is the digit 0
    assert len(d.val) == 4
    expected = torch.tensor(x[..., 2], dtype=torch.float32).permute(2, 0, 1)
    assert torch.allclose(raw_pixels(d, 2), expected, atol=1e-3)


@pytest.mark.parametrize("name, expected", [
    ("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"),
    ("mnist", "MNIST/raw"), ("fashion_mnist", "FashionMNIST/raw"), ("svhn", "train_32x32.mat"),
])
def test_missing_files_say_where_and_how_to_download(tmp_path, name, expected):
    with pytest.raises(UserError) as err:
        load_dataset(name, root=tmp_path / "empty")
    message = str(err.value)
    assert str(tmp_path / "empty") in message and expected in message
    assert "download: true" in message


def write_pngs(folder: Path, classes: dict[str, int], size: int = 10) -> None:
    for cls, count in classes.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = RNG.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / cls / f"{i}.png")


def test_imagefolder_train_and_val_folders(tmp_path):
    write_pngs(tmp_path / "train", {"cat": 4, "dog": 3})
    write_pngs(tmp_path / "val", {"cat": 2, "dog": 2})
    d = load_dataset("imagefolder", root=tmp_path, image_size=8)
    assert (d.num_classes, d.in_channels, d.image_size, d.classes) == (2, 3, 8, ("cat", "dog"))
    assert isinstance(d.train, InMemoryDataset) and d.train.images.shape == (7, 3, 8, 8)
    assert d.val.labels.tolist() == [0, 0, 1, 1]


def test_imagefolder_single_folder_is_split_by_seed(tmp_path):
    write_pngs(tmp_path / "all", {"a": 5, "b": 5})
    one = load_dataset("imagefolder", root=tmp_path / "all", image_size=10, val_fraction=0.4, seed=1)
    assert len(one.train) == 6 and len(one.val) == 4
    assert one.val.labels.tolist() == [0, 0, 1, 1]
    again = load_dataset("imagefolder", root=tmp_path / "all", image_size=10, val_fraction=0.4, seed=1)
    assert torch.equal(one.val.images, again.val.images)


def test_imagefolder_streamed_from_disk_matches_in_memory(tmp_path):
    write_pngs(tmp_path / "train", {"a": 3, "b": 3})
    write_pngs(tmp_path / "val", {"a": 2, "b": 1})
    memory = load_dataset("imagefolder", root=tmp_path, image_size=10, in_memory=True)
    disk = load_dataset("imagefolder", root=tmp_path, image_size=10, in_memory=False)
    assert not isinstance(disk.train, InMemoryDataset)
    assert disk.mean == pytest.approx(memory.mean) and disk.std == pytest.approx(memory.std)
    loader = make_loader(disk.val, 2, train=False, augment=None, device="cpu", seed=0, num_workers=0)
    x = torch.cat([xb for xb, _ in loader])
    y = torch.cat([yb for _, yb in loader])
    assert torch.allclose(x, memory.val.images, atol=1e-5) and torch.equal(y, memory.val.labels)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(UserError, match="needs `root`"):
        load_dataset("imagefolder")
    with pytest.raises(UserError, match="is not a folder"):
        load_dataset("imagefolder", root=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no class subfolders holding images"):
        load_dataset("imagefolder", root=tmp_path / "empty")
    # A folder that is no data set (say, a home folder): its contents are never listed.
    for name in ("secret-project", "tax-returns"):
        (tmp_path / "home" / name).mkdir(parents=True)
    with pytest.raises(UserError) as info:
        load_dataset("imagefolder", root=tmp_path / "home")
    assert "secret" not in str(info.value) and "tax" not in str(info.value)
    write_pngs(tmp_path / "mismatch" / "train", {"a": 2, "b": 2})
    write_pngs(tmp_path / "mismatch" / "val", {"a": 2, "c": 2})
    with pytest.raises(UserError, match="same class subfolders, but 2 differ, e.g. 'b'"):
        load_dataset("imagefolder", root=tmp_path / "mismatch")


def test_corrupt_cifar_file_is_a_user_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot read the files .*UnpicklingError"):
        load_dataset("cifar10", root=tmp_path)
