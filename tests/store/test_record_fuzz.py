"""Property test: whatever bytes a record file holds, reading it gives a record or a UserError
naming the file (never another exception), and a bad file is never counted as finished."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resbench.errors import UserError
from resbench.store import Store, check
from tests.store.test_store import make_record

GOOD = make_record("k1").to_json()
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def mutated_record() -> st.SearchStrategy[bytes]:
    """A valid record with one field replaced by arbitrary JSON, or dropped."""
    def mutate(field: str, value, drop: bool) -> bytes:
        data = dict(GOOD)
        if drop:
            data.pop(field)
        else:
            data[field] = value
        return json.dumps(data).encode()

    return st.builds(mutate, st.sampled_from(sorted(GOOD)), JSON, st.booleans())


CONTENT = st.one_of(st.binary(max_size=300), mutated_record(),
                    st.builds(lambda v: json.dumps(v).encode(), JSON),
                    st.builds(lambda b, n: json.dumps(GOOD).encode()[:n] + b,
                              st.binary(max_size=20), st.integers(0, 400)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONTENT)
def test_any_record_file_is_read_or_refused_naming_it(content):
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "exp")
        store.trials_dir.mkdir(parents=True)
        path = store.trials_dir / "k1.json"
        path.write_bytes(content)
        try:
            record = store.read_record("k1")
        except UserError as e:
            assert str(e).startswith(f"{path}: ")
            assert len(str(e)) < 3000
            try:
                finished = store.has("k1")
            except UserError:
                finished = False
            assert not finished
            assert [p.path for p in check(store.path)] == [path]
        else:
            assert record.key == "k1" and store.has("k1") and check(store.path) == []


def test_a_huge_value_is_quoted_bounded(tmp_path):
    store = Store(tmp_path / "exp")
    store.trials_dir.mkdir(parents=True)
    fields = {name: "x" * 10**6 for name in ("status", "metrics", "curves", "seed")}
    (store.trials_dir / "k1.json").write_text(json.dumps({**GOOD, **fields}))
    try:
        store.read_record("k1")
    except UserError as e:
        assert "more characters" in str(e) and len(str(e)) < 2000
    else:
        raise AssertionError("a record with a 1 MB status was accepted")
