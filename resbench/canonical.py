"""Canonical JSON and content keys: the one way resbench turns a value into text and a hash.

Spec keys (``Spec.key``) and trial keys (``resbench.store.trial_key``) are both
``content_key`` of canonical JSON, so equal content always gets an equal key. Stdlib only.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEY_LENGTH = 16  # hex characters of the SHA-256 kept in a key


def json_ready(obj: Any) -> Any:
    """A JSON-ready copy: tuples → lists, numpy/torch scalars → Python, non-finite floats → null.

    Strict JSON has no NaN/Infinity (a diverged loss), so those become null.
    """
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays/scalars and tensors, without importing either
        return json_ready(obj.tolist())
    raise TypeError(f"cannot store a {type(obj).__name__} in a JSON record: {obj!r}")


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the same value always gives the same text (and hash)."""
    return json.dumps(json_ready(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_key(obj: Any) -> str:
    """``KEY_LENGTH`` hex characters of the SHA-256 of ``obj``'s canonical JSON."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:KEY_LENGTH]
