"""The spec schema: frozen, typed, validated once at load time. No torch here."""
from __future__ import annotations

from typing import Annotated, Any, Optional, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from resbench.canonical import content_key
from resbench.spec.vocab import (
    ALWAYS_KEYED_OPTIONS,
    BLOCKS,
    RESHAPING_SHORTCUTS,
    SHORTCUT_OPTIONS,
    SHORTCUTS,
    STEMS,
    ActivationKind,
    BlockKind,
    NormKind,
    ShortcutKind,
    StemKind,
)

M = TypeVar("M", bound=BaseModel)

# Upper bounds far above any published network (ResNet-1202 has 200 blocks a stage, a 10,000-layer
# residual net 5,000; the widest nets have a few thousand channels), so that every spec that
# validates can be counted by cost() on the meta device without overflowing a tensor's size,
# and absurd values are refused at load time, not by a crash or an out-of-memory kill later.
MAX_BLOCKS = 20_000  # per stage, and in all stages together
MAX_STAGES = 64
MAX_CHANNELS = 1 << 20  # any layer's channels: widths, stem width, bottleneck inner width
MAX_INPUT_SIZE = 1 << 14
MAX_CLASSES = 1 << 24
MAX_EXPANSION = 64
MAX_NAME = 200  # names become experiment folder names (at most 255 bytes on most file systems)
MAX_DESCRIPTION = 10_000


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


def count(le: int) -> Any:
    """An integer field in [1, ``le``]; ``true``/``false`` are not integers here."""
    return Annotated[int, BeforeValidator(_not_bool), Field(gt=0, le=le)]


PositiveInt = count(MAX_CHANNELS)  # widths, groups, width_per_group, stem width


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class ShapeError(ValueError):
    """A combination of fields that cannot build (raised inside validation, located by path)."""

    def __init__(self, path: str, message: str, value: Any = None, allowed: Any = None) -> None:
        super().__init__(message)
        self.path, self.message, self.value, self.allowed = path, message, value, allowed


class StemSpec(Frozen):
    """The stem: ``cifar`` (one 3x3 conv), ``imagenet`` (7x7/2 + max-pool), ``deep`` (3x 3x3)."""

    kind: StemKind
    width: Optional[PositiveInt] = Field(None, description="Output channels (default by kind).")


class HeadSpec(Frozen):
    """Global average pooling, optional dropout, one linear classifier."""

    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def _with_shortcut_options(base: type[M], name: str) -> type[M]:
    """``base`` followed by one optional field per shortcut option the vocabulary declares (unset:
    a stage of that kind gets the declared default; other stages must leave it unset)."""
    fields: dict[str, Any] = {
        field: (Optional[option.type], Field(None, description=(
            f"{option.description} Only for the {kind!r} shortcut (default {option.default!r}).")))
        for field, (kind, option) in SHORTCUT_OPTIONS.items()}
    return create_model(name, __base__=base, __module__=__name__, **fields)


SHORTCUT_HELP = "How x reaches the block's output. " + "; ".join(
    f"{kind}: y = {info.formula} (where the shape changes: {info.reshaped})"
    for kind, info in SHORTCUTS.items())


class _StageFields(Frozen):
    depth: count(MAX_BLOCKS)
    width: PositiveInt
    stride: count(4) = 1
    block: Optional[BlockKind] = None
    shortcut: Optional[ShortcutKind] = Field(None, description=SHORTCUT_HELP)
    groups: Optional[PositiveInt] = None
    width_per_group: Optional[PositiveInt] = None
    expansion: Optional[count(MAX_EXPANSION)] = None
    se_ratio: Optional[float] = Field(None, ge=0.0, le=1.0)


class StageSpec(_with_shortcut_options(_StageFields, "_StageOptions")):  # type: ignore[misc]
    """One stage: ``depth`` blocks of ``width`` planes; the first block applies ``stride``.

    Fields left out take the spec's top-level defaults; after validation every field is set.
    """

    @property
    def out_channels(self) -> int:
        return self.width * (self.expansion or BLOCKS[self.block or "basic"].expansion)

    @property
    def inner_width(self) -> int:
        """Width of a bottleneck's grouped conv (torchvision's formula)."""
        return int(self.width * ((self.width_per_group or 64) / 64.0)) * (self.groups or 1)

    def shortcut_options(self) -> dict[str, Any]:
        """This stage's shortcut options by name (those its kind declares, resolved)."""
        return {name: getattr(self, name) for name in SHORTCUTS[self.shortcut].options}


# Top-level fields that act as defaults for every stage.
STAGE_DEFAULTS = ("block", "shortcut", "groups", "width_per_group", "expansion", "se_ratio",
                  *SHORTCUT_OPTIONS)


class _SpecFields(Frozen):
    """The spec's fields before the shortcut options (the order pydantic reports errors in)."""

    name: str = Field("", max_length=MAX_NAME)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    input_channels: PositiveInt = 3
    num_classes: count(MAX_CLASSES) = 1000
    input_size: Optional[count(MAX_INPUT_SIZE)] = Field(
        None, description="Default: 32 for the cifar stem, else 224.")
    norm: NormKind = "batch"
    activation: ActivationKind = "relu"
    zero_init_residual: bool = False
    stochastic_depth: float = Field(0.0, ge=0.0, lt=1.0, description="Max drop-path rate.")
    stem: StemSpec
    block: BlockKind = "basic"
    shortcut: ShortcutKind = Field("projection", description=SHORTCUT_HELP)
    groups: PositiveInt = 1
    width_per_group: PositiveInt = 64
    expansion: Optional[count(MAX_EXPANSION)] = None
    se_ratio: float = Field(0.0, ge=0.0, le=1.0)


class Spec(_with_shortcut_options(_SpecFields, "_SpecOptions")):  # type: ignore[misc]
    """A residual (or plain) network as data."""

    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=MAX_STAGES)
    head: HeadSpec = HeadSpec()
    recipe: Optional[dict[str, Any]] = Field(None, description="Training recipe (see Recipe).")

    @field_validator("stem", mode="before")
    @classmethod
    def _stem_shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve(self) -> Spec:
        stem = self.stem
        if stem.width is None:
            stem = stem.model_copy(update={"width": STEMS[stem.kind].width})
        if stem.kind == "deep" and stem.width % 2:
            raise ShapeError("stem.width", "the deep stem's first two convs have width / 2 "
                             f"channels, so its width must be even, but is {stem.width}",
                             stem.width)
        stages = tuple(self._resolve_stage(i, s) for i, s in enumerate(self.stages))
        self._check_top_level_options(stages)
        _check_sizes(stages)
        _check_shapes(stem.width, stages)
        size = self.input_size or STEMS[stem.kind].input_size
        for key, value in (("stem", stem), ("stages", stages), ("input_size", size)):
            object.__setattr__(self, key, value)
        return self

    def _resolve_stage(self, i: int, stage: StageSpec) -> StageSpec:
        explicit = stage.model_fields_set
        filled = {k: getattr(self, k) for k in STAGE_DEFAULTS if getattr(stage, k) is None}
        stage = stage.model_copy(update=filled)
        info = BLOCKS[stage.block]
        where = f"stages[{i}]"
        if stage.expansion is None:
            stage = stage.model_copy(update={"expansion": info.expansion})
        if info.grouped and stage.inner_width < 1:
            raise ShapeError(f"{where}.width_per_group", "a bottleneck's inner width "
                             "int(width * width_per_group / 64) * groups must be at least 1, but is "
                             f"int({stage.width} * {stage.width_per_group} / 64) * {stage.groups} = 0",
                             stage.width_per_group)
        if not info.grouped and (stage.groups != 1 or stage.width_per_group != 64):
            field = "groups" if stage.groups != 1 else "width_per_group"
            raise ShapeError(f"{where}.{field}", f"{stage.block!r} blocks support only groups=1 and "
                             "width_per_group=64; use a bottleneck block for grouped convolutions",
                             getattr(stage, field))
        for field, (kind, option) in SHORTCUT_OPTIONS.items():
            value = getattr(stage, field)
            if stage.shortcut == kind:
                if value is None:
                    stage = stage.model_copy(update={field: option.default})
            elif value is not None and field not in explicit:
                stage = stage.model_copy(update={field: None})  # a top-level default, unused here
            elif value is not None:
                raise ShapeError(f"{where}.{field}", f"{field} applies only to the {kind!r} "
                                 f"shortcut, but this stage's shortcut is {stage.shortcut!r}", value)
        return stage

    def _check_top_level_options(self, stages: tuple[StageSpec, ...]) -> None:
        for field, (kind, _) in SHORTCUT_OPTIONS.items():
            if getattr(self, field) is not None and not any(s.shortcut == kind for s in stages):
                raise ShapeError(field, f"{field} applies only to the {kind!r} shortcut, "
                                 "which no stage uses", getattr(self, field))

    # ----- derived views -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Weighted layers as the papers count them: stem convs + branch convs + the classifier."""
        branch = sum(s.depth * BLOCKS[s.block].convs for s in self.stages)
        return STEMS[self.stem.kind].convs + branch + 1

    def stage_channels(self) -> list[int]:
        """Output channels of the stem, then of each stage."""
        return [self.stem.width, *(s.out_channels for s in self.stages)]

    def canonical(self) -> dict[str, Any]:
        """The resolved architecture alone: no name, description, recipe or unused defaults; a
        stage lists its shortcut kind's options (and ``ALWAYS_KEYED_OPTIONS``, null if unused)."""
        data = self.model_dump(mode="json", exclude={"name", "description", "recipe",
                                                     *STAGE_DEFAULTS})
        for stage, out in zip(self.stages, data["stages"]):
            for field, (kind, _) in SHORTCUT_OPTIONS.items():
                if kind != stage.shortcut and field not in ALWAYS_KEYED_OPTIONS:
                    del out[field]
        return data

    def __hash__(self) -> int:
        return hash((self.name, self.key()))

    def key(self) -> str:
        """Content hash of :meth:`canonical`: equal architectures have equal keys."""
        return content_key(self.canonical())

    def summary_fields(self) -> dict[str, Any]:
        """Flat fields for tables and grouping (one value per field; ``mixed`` if stages differ)."""

        def common(field: str) -> Any:
            values = {getattr(s, field) for s in self.stages}
            return values.pop() if len(values) == 1 else "mixed"

        shortcut = common("shortcut")
        return {
            "block": common("block"),
            "shortcut": shortcut,
            "family": "plain" if shortcut == "none" else "residual",
            "depth": self.depth,
            "width": self.stages[0].width,
            "widths": "-".join(str(s.width) for s in self.stages),
            "depths": "-".join(str(s.depth) for s in self.stages),
            "stem": self.stem.kind,
            "stem_width": self.stem.width,
            "strides": "-".join(str(s.stride) for s in self.stages),
            "width_per_group": common("width_per_group"),
            "head_dropout": self.head.dropout,
            "norm": self.norm,
            "activation": self.activation,
            "groups": common("groups"),
            "se_ratio": common("se_ratio"),
            "stochastic_depth": self.stochastic_depth,
            "zero_init_residual": self.zero_init_residual,
            "num_classes": self.num_classes,
            "input_channels": self.input_channels,
            "input_size": self.input_size,
        }


def _check_sizes(stages: tuple[StageSpec, ...]) -> None:
    """Bounds on what fields multiply to: channels of any layer, blocks in all stages."""
    for i, stage in enumerate(stages):
        for what, channels in (("output", stage.out_channels), ("inner", stage.inner_width)):
            if channels > MAX_CHANNELS:
                field = "width_per_group" if what == "inner" else "width"
                raise ShapeError(f"stages[{i}].{field}", f"this stage's {what} width has "
                                 f"{channels:,} channels; at most {MAX_CHANNELS:,} are allowed",
                                 getattr(stage, field))
    blocks = sum(s.depth for s in stages)
    if blocks > MAX_BLOCKS:
        raise ShapeError("stages", f"the stages have {blocks:,} blocks in all; at most "
                         f"{MAX_BLOCKS:,} are allowed", blocks)


def _check_shapes(stem_width: int, stages: tuple[StageSpec, ...]) -> None:
    """Catch shortcut/shape combinations that cannot build, before any tensor exists."""
    channels = stem_width
    for i, stage in enumerate(stages):
        out = stage.out_channels
        for j, (c_in, stride) in enumerate(((channels, stage.stride), (out, 1))):
            if j == 1 and stage.depth == 1:
                break
            reshapes = c_in != out or stride != 1
            kind, info = stage.shortcut, SHORTCUTS[stage.shortcut]
            article = "an" if kind[0] in "aeiou" else "a"
            if reshapes and not info.reshapes:
                raise ShapeError(
                    f"stages[{i}].shortcut",
                    f"{article} {kind} shortcut cannot change shape, but block {j} of this stage "
                    f"maps {c_in} to {out} channels with stride {stride}",
                    stage.shortcut, sorted(RESHAPING_SHORTCUTS))
            if not info.narrows and out < c_in:
                raise ShapeError(
                    f"stages[{i}].shortcut",
                    f"{article} {kind} shortcut can only add channels, but block {j} of this stage "
                    f"maps {c_in} to {out} channels", stage.shortcut)
        channels = out
