"""Property tests: any mutated or random spec either validates and builds, or raises SpecError."""
from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resbench.errors import SpecError
from resbench.spec import Spec, parse_spec
from resbench.spec.vocab import ACTIVATIONS, BLOCKS, NORMS, SHORTCUTS, STEMS

BASES = [
    {"num_classes": 10, "stem": "cifar", "shortcut": "zero_pad",
     "stages": [{"depth": 2, "width": 8}, {"depth": 2, "width": 16, "stride": 2}]},
    {"num_classes": 5, "stem": {"kind": "imagenet", "width": 8}, "block": "bottleneck",
     "groups": 2, "width_per_group": 8, "shortcut": "projection",
     "stages": [{"depth": 1, "width": 4}, {"depth": 2, "width": 8, "stride": 2}]},
    {"num_classes": 3, "stem": "deep", "block": "preact_basic", "shortcut": "gated",
     "gate_bias": -2.0, "stages": [{"depth": 1, "width": 8, "stride": 2}]},
]

KIND_VALUES = [*BLOCKS, *STEMS, *SHORTCUTS, *NORMS, *ACTIVATIONS, "basci", "projction"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.floats(-2, 2), st.just(float("nan")),
    st.sampled_from(KIND_VALUES), st.text(max_size=6),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["depth", "width", "stride", "kind", "block", "shortcut", "groups", "x"]), inner, max_size=3)),
    max_leaves=6)
FIELDS = ["num_classes", "input_channels", "input_size", "norm", "activation", "stem", "block",
          "shortcut", "groups", "width_per_group", "expansion", "se_ratio", "gate_bias", "scale",
          "stochastic_depth", "zero_init_residual", "head", "stages", "name", "recipe", "bogus"]
STAGE_FIELDS = ["depth", "width", "stride", "block", "shortcut", "groups", "width_per_group",
                "expansion", "se_ratio", "gate_bias", "scale", "typo"]


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "stage", "drop"]))
        if where == "top":
            spec[draw(st.sampled_from(FIELDS))] = draw(values)
        elif where == "stage" and isinstance(spec.get("stages"), list) and spec["stages"]:
            stage = draw(st.sampled_from(spec["stages"]))
            if isinstance(stage, dict):
                stage[draw(st.sampled_from(STAGE_FIELDS))] = draw(
                    st.one_of(values, st.sampled_from(KIND_VALUES), st.integers(1, 8)))
        elif spec:
            spec.pop(draw(st.sampled_from(sorted(spec))), None)
    return spec


def build_on_meta(spec: Spec):
    import torch

    from resbench.compile import build

    spec = spec.model_copy(update={"input_size": 32})
    with torch.device("meta"):
        model = build(spec).eval()
        out = model(torch.empty(2, spec.input_channels, 32, 32))
    assert tuple(out.shape) == (2, spec.num_classes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_validate_or_raise_spec_error(data):
    try:
        spec = parse_spec(data, file="mutant.yaml")
    except SpecError as exc:
        assert str(exc).startswith("mutant.yaml")
        return
    assert_round_trips(spec)


def assert_round_trips(spec: Spec) -> None:
    """What a record stores of a spec (its canonical form) parses back into the same network."""
    again = parse_spec(spec.canonical())
    assert again.key() == spec.key() and again.canonical() == spec.canonical()
    assert again.depth == spec.depth and again.stage_channels() == spec.stage_channels()


@settings(max_examples=200, deadline=None)
@given(st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)))
def test_random_data_validates_or_raises_spec_error(data):
    try:
        spec = parse_spec(data, file="random.yaml")
    except SpecError as exc:  # never a bare ValidationError, KeyError or TypeError
        assert str(exc).startswith("random.yaml: ") and exc.message
        return
    assert_round_trips(spec)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_every_valid_mutant_builds_with_the_right_output_shape(data):
    try:
        spec = parse_spec(data)
    except SpecError:
        return
    build_on_meta(spec)
