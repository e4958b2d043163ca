"""The one data cache: each data set loaded once per owner, at most ``max_entries`` kept."""
from __future__ import annotations

import pytest

from resbench.spec.recipe import DataConfig
from resbench.train.datacache import DataCache

from .conftest import TINY_DATA


def config(count: int) -> DataConfig:
    return DataConfig(**{**TINY_DATA, "options": {**TINY_DATA["options"], "count": count}})


def test_a_data_set_is_loaded_once_and_shared():
    cache = DataCache()
    first = cache.get(config(96))
    assert cache.get(config(96)) is first  # equal sections, one load
    other = cache.get(config(128))
    assert other is not first and len(other.train) + len(other.val) == 128
    assert len(cache) == 2


def test_the_least_recently_used_data_set_is_dropped_beyond_the_bound():
    cache = DataCache(max_entries=2)
    a, b = cache.get(config(96)), cache.get(config(128))
    assert cache.get(config(96)) is a  # a is now the most recently used
    cache.get(config(160))
    assert len(cache) == 2
    assert cache.get(config(96)) is a  # kept
    assert cache.get(config(128)) is not b  # dropped, loaded again
    with pytest.raises(ValueError, match="max_entries"):
        DataCache(max_entries=0)
