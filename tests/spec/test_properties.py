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


# ----- every field over its whole valid range ------------------------------------------------

def _ints(lo: int, hi: int):
    """Small values, the bounds themselves, and anything between (bounds are where specs broke)."""
    return st.one_of(st.integers(lo, min(hi, 64)), st.sampled_from([lo, hi]), st.integers(lo, hi))


@st.composite
def full_range_specs(draw):
    from resbench.spec.schema import MAX_CHANNELS, MAX_CLASSES, MAX_EXPANSION, MAX_INPUT_SIZE

    block = draw(st.sampled_from(sorted(BLOCKS)))
    data = {
        "num_classes": draw(_ints(1, MAX_CLASSES)),
        "input_channels": draw(_ints(1, MAX_CHANNELS)),
        "input_size": draw(_ints(1, MAX_INPUT_SIZE)),
        "stem": {"kind": draw(st.sampled_from(sorted(STEMS))), "width": draw(_ints(1, MAX_CHANNELS))},
        "block": block,
        "norm": draw(st.sampled_from(sorted(NORMS))),
        "activation": draw(st.sampled_from(sorted(ACTIVATIONS))),
        "se_ratio": draw(st.sampled_from([0.0, 1e-9, 0.25, 1.0])),
        "stochastic_depth": draw(st.sampled_from([0.0, 0.999])),
        "head": {"dropout": draw(st.sampled_from([0.0, 0.999]))},
        "stages": [{"depth": draw(st.integers(1, 2)), "width": draw(_ints(1, MAX_CHANNELS)),
                    "stride": draw(st.integers(1, 4)),
                    "shortcut": draw(st.sampled_from(sorted(SHORTCUTS)))}
                   for _ in range(draw(st.integers(1, 3)))],
    }
    if draw(st.booleans()):
        data["expansion"] = draw(_ints(1, MAX_EXPANSION))
    if BLOCKS[block].grouped:
        data["groups"] = draw(_ints(1, MAX_CHANNELS))
        data["width_per_group"] = draw(_ints(1, MAX_CHANNELS))
    return data


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.filter_too_much])
@given(full_range_specs())
def test_random_valid_values_of_every_field_build_and_cost(data):
    """A spec that validates must build: any values the schema accepts, up to its upper bounds,
    give a network whose cost() counts and whose forward pass (on meta) has the right shape."""
    import torch

    from resbench.compile import build, cost

    try:
        spec = parse_spec(data)
    except SpecError:
        return
    c = cost(spec)
    assert c.params > 0 and c.macs > 0 and c.activation_bytes > 0
    with torch.device("meta"):
        model = build(spec).eval()
        out = model(torch.empty(1, spec.input_channels, spec.input_size, spec.input_size))
    assert tuple(out.shape) == (1, spec.num_classes)
