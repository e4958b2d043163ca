"""Data sets as train/validation splits, and batches for training.

``load_dataset(name, ...)`` → ``DataSplits``; ``make_loader(split, ...)`` → an iterable of
``(x, y)`` batches on the training device. A new data set is one loader function and one line
in the ``DATASETS`` table (see ``_datasets.py``); torchvision is imported only inside the
loaders that read it.
"""
from resbench.data._datasets import DATASETS, load_dataset, make_synthetic
from resbench.data._loaders import Augment, DeviceLoader, InMemoryLoader, augment_batch, make_loader
from resbench.data._splits import DataRequest, DataSplits, InMemoryDataset, stratified_split

__all__ = [
    "DATASETS",
    "Augment",
    "DataRequest",
    "DataSplits",
    "DeviceLoader",
    "InMemoryDataset",
    "InMemoryLoader",
    "augment_batch",
    "load_dataset",
    "make_loader",
    "make_synthetic",
    "stratified_split",
]
