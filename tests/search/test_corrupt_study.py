"""Fault injection: a corrupt or truncated study.db (of an experiment made before the journal
file became the default) is one clear error saying how to recover,
and removing it (as the message says) reuses the finished trials' records."""
from __future__ import annotations

from pathlib import Path

import pytest

from resbench.errors import UserError
from resbench.search import SearchConfig, run_search
from resbench.spec.space import load_space
from tests.search.conftest import tiny_space

pytestmark = pytest.mark.slow


def config(path: Path, tmp_path: Path, **kw) -> SearchConfig:
    return SearchConfig.from_space(load_space(path), results_root=tmp_path / "results",
                                   progress=False, sampler_seed=0, **kw)


@pytest.mark.parametrize("damage", ["random_bytes", "truncated"])
def test_a_corrupt_study_says_how_to_recover(write_space, tmp_path, damage):
    path = write_space(tiny_space(recipe={"epochs": 1}, search={"pruner": "none"}))
    # an experiment of an earlier version, whose study is the SQLite study.db (new ones get a
    # journal file): later runs without --storage keep using it
    db = tmp_path / "results" / "tiny" / "study.db"
    run_search(config(path, tmp_path, trials=2, storage=f"sqlite:///{db}"))
    content = db.read_bytes()
    db.write_bytes(bytes(range(256)) * 16 if damage == "random_bytes" else content[:1024])
    with pytest.raises(UserError) as error:
        run_search(config(path, tmp_path, trials=3, resume=True))
    message = str(error.value)
    assert message.startswith(f"{db}: the Optuna study is unreadable (")
    assert f"remove it (rm {db})" in message and "are reused, not trained again" in message

    db.unlink()  # what the message says to do
    result = run_search(config(path, tmp_path, trials=2, resume=True))
    assert result.counts["done"] == 2 and result.counts["cached"] == 2  # nothing trained again
