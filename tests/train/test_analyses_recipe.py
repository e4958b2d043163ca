"""The recipe's ``analyses`` and ``save_weights``: how they are written, what is refused, and
that neither changes a trial's key (they do not change what is trained)."""
from __future__ import annotations

import pytest

from resbench.errors import SpecError
from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe
from resbench.store import trial_key

from .conftest import TINY_SPEC


def test_a_list_of_names_and_options_or_a_mapping():
    a = parse_recipe({"analyses": ["landscape", "lesion", {"signal": {"examples": 16}}]}).analyses
    assert a.names == ("lesion", "signal", "landscape")  # the order they run in
    assert a.signal.examples == 16 and a.lesion.draws == 3 and a.shatter is None
    # The mapping form merges across recipe layers; null there turns one off.
    b = parse_recipe({"analyses": {"shatter": None, "lesion": {"max_k": 2}, "signal": {}}}).analyses
    assert b.names == ("lesion", "signal") and b.lesion.max_k == 2
    assert parse_recipe({}).analyses.names == ()


@pytest.mark.parametrize("analyses, message", [
    (["lesoin"], "recipe.analyses.lesoin: unknown field 'lesoin' (allowed: landscape, lesion, "
                 "shatter, signal); did you mean 'lesion'?"),
    ([{"lesion": {"draw": 2}}], "recipe.analyses.lesion.draw: unknown field 'draw'"),
    ([{"landscape": {"alpha_min": 0.5}}], "alpha_min <= 0 and alpha_max >= 1"),
    ([{"shatter": {"points": 2}}], "recipe.analyses.shatter.points"),
    ([3], "each analysis is a name or a mapping"),
])
def test_mistakes_name_the_file_and_field(analyses, message):
    with pytest.raises(SpecError, match="^x.yaml: ") as info:
        parse_recipe({"analyses": analyses}, file="x.yaml")
    assert message in str(info.value)


def test_neither_analyses_nor_save_weights_changes_the_trial_key():
    spec = parse_spec(TINY_SPEC).canonical()
    plain = parse_recipe({"epochs": 2})
    other = parse_recipe({"epochs": 2, "save_weights": False,
                          "analyses": ["lesion", "signal", "shatter", "landscape"]})
    assert plain.trial_dict() == other.trial_dict()
    assert trial_key(spec, plain.trial_dict(), 0) == trial_key(spec, other.trial_dict(), 0)
    assert "analyses" not in plain.trial_dict() and "save_weights" not in plain.trial_dict()


def test_the_library_suites_ask_for_their_analyses():
    """run_bench.py's degradation suite runs the lesion study and signal propagation; the claims
    suite runs all four, on plain and residual nets alike."""
    from resbench.spec.library import library_root
    from resbench.train.suite import load_suite

    suites = library_root() / "suites"
    expected = {"degradation": ("lesion", "signal"),
                "claims": ("lesion", "signal", "shatter", "landscape")}
    for name, names in expected.items():
        suite = load_suite(suites / f"{name}.yaml")
        plans = suite.plans()
        assert {p.recipe.analyses.names for p in plans} == {names}
        assert {p.spec.stages[0].shortcut == "none" for p in plans} == {True, False}
