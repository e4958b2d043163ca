"""Loaded data sets shared by the trials of one run: each data set is loaded once.

The one data cache of resbench: a suite run, a local search worker and a Ray worker process
each hold one, for as long as they run; none is module state that outlives its owner except a
Ray worker's, which Tune reuses for trial after trial (``reuse_actors``) and which is bounded.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from resbench.canonical import canonical_json

if TYPE_CHECKING:  # importing this module stays light: torch loads with the first data set
    from resbench.data import DataSplits
    from resbench.spec.recipe import DataConfig


class DataCache:
    """Data sets by their recipe ``data`` section; with ``max_entries``, the least recently used
    one is dropped when another is loaded (``None``: keep every one)."""

    def __init__(self, max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
        self.max_entries = max_entries
        self._data: OrderedDict[str, DataSplits] = OrderedDict()

    def get(self, cfg: DataConfig) -> DataSplits:
        from resbench.train.trial import load_data

        key = canonical_json(cfg.model_dump(mode="json"))
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        data = self._data[key] = load_data(cfg)
        if self.max_entries is not None:
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
        return data

    def __len__(self) -> int:
        return len(self._data)
