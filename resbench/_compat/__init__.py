"""Adapters around the private parts of third-party libraries that resbench relies on: one
module per library, each saying why, so an upgrade that moves one breaks in one place.

``tests/test_compat.py`` checks every one of them against the installed versions (it checks
the attributes exist and exercises them); ``pyproject.toml`` caps optuna and ray at the series
those tests passed with. Each module imports its library only when a function is called,
except ``torch``, whose dispatch mode is a base class.
"""
