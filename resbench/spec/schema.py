"""The spec schema: frozen, typed, validated once at load time. No torch here."""
from __future__ import annotations

import math
from typing import Annotated, Any, Optional, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    create_model,
    field_validator,
    model_validator,
)

from resbench.canonical import content_key
from resbench.spec.regnet import QUANT, regnet_stages
from resbench.spec.vocab import (
    ALWAYS_KEYED_OPTIONS,
    BLOCKS,
    INPUT_SIZED_BLOCKS,
    KIND_OPTIONS,
    RESHAPING_SHORTCUTS,
    SHORTCUTS,
    STEM_WIDTHS,
    STEMS,
    ActivationKind,
    BlockKind,
    NormFreeKind,
    NORMFREE_BLOCKS,
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
    """The stem: ``cifar`` (one 3x3 conv), ``imagenet`` (7x7/2 + max-pool), ``deep`` (3x 3x3),
    ``conv3x3`` (one 3x3/2 conv, RegNet's)."""

    kind: StemKind
    width: Optional[PositiveInt] = Field(None, description="Output channels (default by kind).")
    widths: Optional[tuple[PositiveInt, ...]] = Field(
        None, description="The deep stem's three conv widths (default: width/2, width/2, width); "
        "the last is the stem's width.")

    def conv_widths(self) -> tuple[int, ...]:
        """Output channels of each of the stem's convolutions (resolved stems only)."""
        if self.widths is not None:
            return self.widths
        n = STEM_WIDTHS.get(self.kind, 1)
        return (*(self.width // 2,) * (n - 1), self.width)


class HeadSpec(Frozen):
    """Global average pooling, optional dropout, one linear classifier."""

    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def _kind_option_fields() -> dict[str, Any]:
    """One optional field per block or shortcut option the vocabulary declares (unset: a stage or
    block of that kind gets the declared default; others must leave it unset)."""
    return {
        field: (Optional[_option_type(option)], Field(None, description=(
            f"{option.description} Only for the {kind!r} {axis} (default {option.default!r}).")))
        for field, (axis, kind, option) in KIND_OPTIONS.items()}


def _option_type(option: Any) -> Any:
    """An option's field type: a bounded count for integers, a float within the option's range
    where it declares one."""
    if option.type is int:
        return count(MAX_CHANNELS)
    if option.range is not None:
        lo, hi = option.range
        return Annotated[float, Field(gt=lo, le=hi)]
    return option.type


def _with_kind_options(base: type[M], name: str, **more: Any) -> type[M]:
    """``base`` followed by the kind options' fields, then ``more``."""
    return create_model(name, __base__=base, __module__=__name__, **_kind_option_fields(), **more)


SHORTCUT_HELP = "How x reaches the block's output. " + "; ".join(
    f"{kind}: y = {info.formula} (where the shape changes: {info.reshaped})"
    for kind, info in SHORTCUTS.items())


class _BlockFields(Frozen):
    """The options one block can take (per stage, or per block of a stage)."""

    block: Optional[BlockKind] = None
    shortcut: Optional[ShortcutKind] = Field(None, description=SHORTCUT_HELP)
    groups: Optional[PositiveInt] = None
    width_per_group: Optional[PositiveInt] = None
    expansion: Optional[count(MAX_EXPANSION)] = None
    se_ratio: Optional[float] = Field(None, ge=0.0, le=1.0)


class BlockSpec(_with_kind_options(_BlockFields, "_BlockOptions")):  # type: ignore[misc]
    """Settings of one block of a stage that differ from the stage's (``stages[i].blocks``)."""


# The fields a block can override: every block option.
BLOCK_FIELDS = tuple(BlockSpec.model_fields)


class _StageFields(Frozen):
    depth: Optional[count(MAX_BLOCKS)] = Field(
        None, description="Blocks in the stage (default: the length of a list of blocks).")
    width: Optional[PositiveInt] = Field(
        None, description="Planes of each block (a dense layer's growth rate); a transition's "
        "follows from its input and compression.")
    stride: count(4) = 1


def _blocks_form(value: Any) -> str:
    return "list" if isinstance(value, (list, tuple)) else "dict"


# A mapping or a list; the discriminator reports only the errors of the form given.
_BLOCKS_FIELD = (Optional[Annotated[Union[Annotated[dict[int, BlockSpec], Tag("dict")],
                                          Annotated[list[BlockSpec], Field(max_length=MAX_BLOCKS),
                                                    Tag("list")]],
                                    Discriminator(_blocks_form)]], Field(
    None, description="Per-block settings: {index: {field: value}} (negative indices count from "
    "the end) or one mapping per block."))


class StageSpec(_with_kind_options(  # type: ignore[misc]
        create_model("_StageBlockFields", __base__=_StageFields, __module__=__name__,
                     **{f: (i.annotation, i) for f, i in _BlockFields.model_fields.items()}),
        "_StageOptions", blocks=_BLOCKS_FIELD)):
    """One stage: ``depth`` blocks of ``width`` planes; the first block applies ``stride``.

    Fields left out take the spec's top-level defaults; after validation every field is set (to
    block 0's settings), and ``blocks`` is None or maps each later block that differs from block
    0 to the fields in which it differs (``block_at(j)`` gives block j's full settings).
    """

    _in_channels: int = PrivateAttr(0)  # set when the spec resolves its channel flow

    @property
    def in_channels(self) -> int:
        """Input channels of the stage (resolved stages only)."""
        return self._in_channels

    @property
    def out_channels(self) -> int:
        """Output channels of the stage (of its last block); a concatenating stage adds each
        block's branch output to its input's channels."""
        last = self.block_at(self.depth - 1) if self.blocks else self
        branch = last.width * (last.expansion or BLOCKS[last.block or "basic"].expansion)
        if SHORTCUTS[last.shortcut or "projection"].concatenates:
            return self._in_channels + self.depth * branch
        return branch

    @property
    def inner_width(self) -> int:
        """Width of a bottleneck's grouped conv (torchvision's formula)."""
        return int(self.width * ((self.width_per_group or 64) / 64.0)) * (self.groups or 1)

    def shortcut_options(self) -> dict[str, Any]:
        """This stage's shortcut options by name (those its kind declares, resolved)."""
        return {name: getattr(self, name) for name in SHORTCUTS[self.shortcut].options}

    def block_options(self) -> dict[str, Any]:
        """This stage's block-kind options by name (those its kind declares, resolved)."""
        return {name: getattr(self, name) for name in BLOCKS[self.block].options}

    def block_at(self, j: int) -> StageSpec:
        """Block ``j``'s settings as a one-kind stage (``blocks`` None) of a resolved stage."""
        override = (self.blocks or {}).get(j)
        if override is None:
            return self if not self.blocks else self.model_copy(update={"blocks": None})
        fields = {f: getattr(override, f) for f in override.model_fields_set}
        return self.model_copy(update={**fields, "blocks": None})

    def block_settings(self) -> list[StageSpec]:
        """``block_at(j)`` for every block, in order."""
        return [self.block_at(j) for j in range(self.depth)]


# Top-level fields that act as defaults for every stage.
STAGE_DEFAULTS = ("block", "shortcut", "groups", "width_per_group", "expansion", "se_ratio",
                  *KIND_OPTIONS)
# Fields new since keys were first pinned: left out of the canonical form where unused, so that
# no existing spec's key changes.
NEW_KIND_OPTIONS = tuple(f for f in KIND_OPTIONS if f not in ALWAYS_KEYED_OPTIONS)


class RegNetSpec(Frozen):
    """RegNet's design-space parameters (Radosavovic et al. 2020): the spec's stages follow
    from them (``resbench.spec.regnet``), as ``block: regnet`` stages with projections."""

    depth: count(MAX_BLOCKS) = Field(description="Blocks in all (d).")
    w0: PositiveInt = Field(multiple_of=QUANT, description="Width of the first block.")
    wa: float = Field(ge=0.0, le=MAX_CHANNELS, description="Width slope per block.")
    wm: float = Field(gt=1.0, le=64.0, description="Width multiplier between stages, in log "
                      "space.")
    group_width: PositiveInt = Field(description="Channels per group of the 3x3 convs.")
    bottleneck_ratio: float = Field(1.0, gt=0.0, le=MAX_EXPANSION,
                                    description="Inner width / width of a block.")

    def stages(self) -> list[dict[str, Any]]:
        return regnet_stages(**self.model_dump())


_GENERATED = {"depth": 1, "width": 1}  # stands for the stages a regnet section generates


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
    normfree: NormFreeKind = Field("none", description=(
        "Train without normalisation: skipinit (y = x + a·F(x), a learnable, starting at 0), "
        "fixup (Zhang et al. 2019), nf (scaled weight standardisation, y = x + nf_alpha·F(x/beta),"
        " Brock et al. 2021); fixup and nf need norm: none."))
    nf_alpha: float = Field(0.2, gt=0.0, le=1.0, description="NF-ResNet's alpha (normfree: nf).")
    stochastic_depth: float = Field(0.0, ge=0.0, lt=1.0, description="Max drop-path rate.")
    stem: StemSpec
    block: BlockKind = "basic"
    shortcut: ShortcutKind = Field("projection", description=SHORTCUT_HELP)
    groups: PositiveInt = 1
    width_per_group: PositiveInt = 64
    expansion: Optional[count(MAX_EXPANSION)] = None
    se_ratio: float = Field(0.0, ge=0.0, le=1.0)


class Spec(_with_kind_options(_SpecFields, "_SpecOptions")):  # type: ignore[misc]
    """A residual (or plain) network as data."""

    stages: tuple[StageSpec, ...] = Field(min_length=1, max_length=MAX_STAGES)
    regnet: Optional[RegNetSpec] = Field(
        None, description="Generate the stages from RegNet's parameters instead of listing them.")
    head: HeadSpec = HeadSpec()
    recipe: Optional[dict[str, Any]] = Field(None, description="Training recipe (see Recipe).")

    @model_validator(mode="before")
    @classmethod
    def _regnet_stands_for_stages(cls, data: Any) -> Any:
        """With a ``regnet`` section the stages are generated (in ``_resolve``, once the section
        is validated): a placeholder stands for them until then."""
        if isinstance(data, dict) and data.get("regnet") is not None:
            if "stages" in data:
                raise ShapeError("regnet", "a spec gives either stages or regnet parameters "
                                 "that generate them, not both")
            data = {**data, "stages": [_GENERATED]}
        return data

    @field_validator("stem", mode="before")
    @classmethod
    def _stem_shorthand(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _resolve(self) -> Spec:
        stem = _resolve_stem(self.stem)
        given = self.stages
        if self.regnet is not None:
            given = tuple(StageSpec(**s) for s in self.regnet.stages())
            if len(given) > MAX_STAGES:
                raise ShapeError("regnet", f"these parameters give {len(given)} stages; at most "
                                 f"{MAX_STAGES} are allowed", len(given))
        stages = tuple(self._resolve_stage(i, s) for i, s in enumerate(given))
        self._check_top_level_options(stages)
        _check_sizes(stages)
        stages = _resolve_channels(stem.width, stages)
        _check_sizes(stages, channels=True)
        self._check_normfree(stages)
        _check_shapes(stem.width, stages, given)
        size = self.input_size or STEMS[stem.kind].input_size
        if self.norm == "group":
            _check_group_norm(size, stem, stages)
        for key, value in (("stem", stem), ("stages", stages), ("input_size", size)):
            object.__setattr__(self, key, value)
        return self

    def _resolve_stage(self, i: int, stage: StageSpec) -> StageSpec:
        """Fill a stage from the top-level defaults and resolve each block that differs; the
        stage keeps block 0's settings and ``blocks`` the later blocks' differences."""
        where = f"stages[{i}]"
        if stage.width is None and (stage.block or self.block) != "transition":
            raise ShapeError(f"{where}.width", "required field is missing")
        depth, overrides = _block_overrides(where, stage)
        explicit = stage.model_fields_set
        filled = {k: getattr(self, k) for k in STAGE_DEFAULTS if getattr(stage, k) is None}
        base = stage.model_copy(update={**filled, "depth": depth, "blocks": None})
        plain = _resolve_block(where, base, ())
        resolved = {j: _resolve_block(f"{where}.blocks[{k}]", base.model_copy(update=fields),
                                      tuple(fields))
                    for j, (k, fields) in overrides.items()}
        settings = [plain, *resolved.values()] if len(resolved) < depth else [*resolved.values()]
        for field, (axis, kind, _) in KIND_OPTIONS.items():
            if field in explicit and getattr(stage, field) is not None and not any(
                    getattr(b, axis) == kind for b in settings):
                raise ShapeError(f"{where}.{field}", f"{field} applies only to the {kind!r} {axis}"
                                 f", but this stage's {axis} is {getattr(plain, axis)!r}",
                                 getattr(stage, field))
        _check_channel_kinds(where, plain, settings, overrides)
        first = resolved.get(0, plain)
        others = range(1, depth) if 0 in resolved else resolved
        later = {j: resolved.get(j, plain) for j in others}
        diffs = {j: _differences(first, b) for j, b in sorted(later.items())}
        diffs = {j: BlockSpec(**d) for j, d in diffs.items() if d}
        if not diffs:
            return first  # a fresh copy already, its blocks None
        return first.model_copy(update={"blocks": diffs})

    def _check_normfree(self, stages: tuple[StageSpec, ...]) -> None:
        if self.normfree == "none":
            if "nf_alpha" in self.model_fields_set:
                raise ShapeError("nf_alpha", "nf_alpha applies only to normfree: nf, but "
                                 "normfree is 'none'", self.nf_alpha)
            return
        if self.normfree != "nf" and "nf_alpha" in self.model_fields_set:
            raise ShapeError("nf_alpha", f"nf_alpha applies only to normfree: nf, but normfree "
                             f"is {self.normfree!r}", self.nf_alpha)
        if self.normfree in ("fixup", "nf") and self.norm != "none":
            raise ShapeError("norm", f"normfree: {self.normfree} replaces normalisation: set "
                             f"norm: none, not {self.norm!r}", self.norm, ["none"])
        for i, stage in enumerate(stages):
            for b in _distinct_blocks(stage):
                if b.block not in NORMFREE_BLOCKS:
                    raise ShapeError(f"stages[{i}].block", f"normfree: {self.normfree} is built "
                                     f"for {' and '.join(sorted(NORMFREE_BLOCKS))} blocks, not "
                                     f"{b.block!r}", b.block, sorted(NORMFREE_BLOCKS))

    def _check_top_level_options(self, stages: tuple[StageSpec, ...]) -> None:
        used = {(axis, getattr(b, axis)) for s in stages for b in _distinct_blocks(s)
                for axis in ("block", "shortcut")}
        for field, (axis, kind, _) in KIND_OPTIONS.items():
            if getattr(self, field) is not None and (axis, kind) not in used:
                raise ShapeError(field, f"{field} applies only to the {kind!r} {axis}, "
                                 "which no stage uses", getattr(self, field))

    # ----- derived views -------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Weighted layers as the papers count them: stem convs + branch convs + the classifier."""
        branch = 0
        for s in self.stages:
            changed = s.blocks or {}
            branch += (s.depth - len(changed)) * BLOCKS[s.block].convs
            branch += sum(BLOCKS[s.block_at(j).block].convs for j in changed)
        return STEMS[self.stem.kind].convs + branch + 1

    def stage_channels(self) -> list[int]:
        """Output channels of the stem, then of each stage."""
        return [self.stem.width, *(s.out_channels for s in self.stages)]

    def canonical(self) -> dict[str, Any]:
        """The resolved architecture alone: no name, description, recipe or unused defaults; a
        stage lists its kinds' options (and ``ALWAYS_KEYED_OPTIONS``, null if unused), and
        ``blocks`` only where a block differs from block 0, with the fields in which it differs;
        fields and stem widths added to the language since keys were pinned appear only where
        they are used, so every spelling of a net has one canonical form and old keys hold."""
        data = self.model_dump(mode="json", exclude={"name", "description", "recipe", "regnet",
                                                     *STAGE_DEFAULTS})
        if data["stem"]["widths"] is None:
            del data["stem"]["widths"]
        if self.normfree == "none":  # fields added since keys were pinned
            del data["normfree"]
        if self.normfree != "nf":
            del data["nf_alpha"]
        for stage, out in zip(self.stages, data["stages"]):
            _drop_unused_options(stage, out)
            if stage.blocks is None:
                del out["blocks"]
            else:
                out["blocks"] = {str(j): {f: v for f, v in b.model_dump(mode="json").items()
                                          if f in b.model_fields_set and v is not None}
                                 for j, b in stage.blocks.items()}
        return data

    def __hash__(self) -> int:
        return hash((self.name, self.key()))

    def key(self) -> str:
        """Content hash of :meth:`canonical`: equal architectures have equal keys."""
        return content_key(self.canonical())

    def summary_fields(self) -> dict[str, Any]:
        """Flat fields for tables and grouping (one value per field; ``mixed`` if stages differ)."""

        def common(field: str) -> Any:
            values = {getattr(b, field) for s in self.stages for b in _distinct_blocks(s)}
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
            "normfree": self.normfree,
            "num_classes": self.num_classes,
            "input_channels": self.input_channels,
            "input_size": self.input_size,
        }


def _resolve_stem(stem: StemSpec) -> StemSpec:
    widths = stem.widths
    if widths is None:
        stem = stem.model_copy(update={"width": stem.width or STEMS[stem.kind].width})
        if stem.kind in STEM_WIDTHS and stem.width % 2:
            raise ShapeError("stem.width", "the deep stem's first two convs have width / 2 "
                             f"channels, so its width must be even, but is {stem.width} (or give "
                             "each conv's width: widths)", stem.width)
        return stem
    convs = STEM_WIDTHS.get(stem.kind)
    if convs is None:
        raise ShapeError("stem.widths", f"widths applies only to the {' and '.join(STEM_WIDTHS)} "
                         f"stem, whose convs can differ in width; the {stem.kind} stem has one "
                         "conv: give its width", list(widths), sorted(STEM_WIDTHS))
    if len(widths) != convs:
        raise ShapeError("stem.widths", f"the {stem.kind} stem has {convs} convs, so widths "
                         f"needs {convs} numbers, got {len(widths)}", list(widths))
    if stem.width is not None and stem.width != widths[-1]:
        raise ShapeError("stem.width", f"the stem's width is its last conv's, widths[-1] = "
                         f"{widths[-1]}, but width is {stem.width}", stem.width)
    default = (*(widths[-1] // 2,) * (convs - 1), widths[-1])
    return stem.model_copy(update={"width": widths[-1],
                                   "widths": None if widths == default else widths})


def _block_overrides(where: str, stage: StageSpec) -> tuple[int, dict[int, tuple[Any, dict]]]:
    """The stage's depth, and its per-block overrides by block index: (the index as written,
    the fields it sets)."""
    blocks, depth = stage.blocks, stage.depth
    if isinstance(blocks, list):
        if depth is not None and depth != len(blocks):
            raise ShapeError(f"{where}.blocks", f"lists {len(blocks)} blocks, but the stage's "
                             f"depth is {depth}; give one or the other, or make them agree",
                             len(blocks))
        depth = len(blocks)
        if depth == 0:
            raise ShapeError(f"{where}.blocks", "a stage needs at least one block", blocks)
        items = list(enumerate(blocks))
    elif depth is None:
        raise ShapeError(f"{where}.depth", "required field is missing (a stage needs a depth, "
                         "or a list of blocks)")
    else:
        items = list((blocks or {}).items())
    out: dict[int, tuple[Any, dict]] = {}
    seen: dict[int, Any] = {}
    for key, block in items:
        j = key + depth if key < 0 else key
        if not 0 <= j < depth:
            raise ShapeError(f"{where}.blocks[{key}]", f"block {key} does not exist: this stage "
                             f"has {depth} blocks (indices 0..{depth - 1}, or -{depth}..-1 from "
                             "the end)", key, list(range(depth)))
        if j in seen:
            raise ShapeError(f"{where}.blocks[{key}]", f"block {key} is block {j}, which "
                             f"blocks[{seen[j]}] already sets", key)
        seen[j] = key
        fields = {f: getattr(block, f) for f in block.model_fields_set}
        if fields:
            out[j] = (key, fields)
    return depth, dict(sorted(out.items()))


def _resolve_block(where: str, block: StageSpec, block_explicit: tuple[str, ...]) -> StageSpec:
    """One block's settings (``blocks`` None): kind defaults filled, and options of a kind the
    block is not dropped where inherited, refused where the block sets them itself."""
    info = BLOCKS[block.block]
    update: dict[str, Any] = {}  # one copy of the block for all its changes
    if block.expansion is None:
        update["expansion"] = info.expansion
    if info.grouped and block.inner_width < 1:
        raise ShapeError(f"{where}.width_per_group", "a bottleneck's inner width "
                         "int(width * width_per_group / 64) * groups must be at least 1, but is "
                         f"int({block.width} * {block.width_per_group} / 64) * {block.groups} = 0",
                         block.width_per_group)
    if not info.grouped and (block.groups != 1 or block.width_per_group != 64):
        field = "groups" if block.groups != 1 else "width_per_group"
        hint = ("; a regnet block's groups follow from group_width" if block.block == "regnet"
                else "; use a bottleneck block for grouped convolutions")
        raise ShapeError(f"{where}.{field}", f"{block.block!r} blocks support only groups=1 and "
                         f"width_per_group=64{hint}", getattr(block, field))
    for field, (axis, kind, option) in KIND_OPTIONS.items():
        value = getattr(block, field)
        if getattr(block, axis) == kind:
            if value is None:
                update[field] = option.default
            elif option.choices and value not in option.choices:
                raise ShapeError(f"{where}.{field}", f"{field} must be one of "
                                 f"{', '.join(map(str, option.choices))}, got {value!r}", value,
                                 list(option.choices))
        elif value is not None and field in block_explicit:
            raise ShapeError(f"{where}.{field}", f"{field} applies only to the {kind!r} {axis}, "
                             f"but this block's {axis} is {getattr(block, axis)!r}", value)
        elif value is not None:
            update[field] = None  # inherited from the stage or the top level, unused here
    block = block.model_copy(update=update) if update else block
    if block.block == "regnet":
        inner = round(block.width * block.bottleneck_ratio)
        if inner < 1 or inner % block.group_width:
            raise ShapeError(f"{where}.group_width", "a regnet block's inner width "
                             f"round(width * bottleneck_ratio) = round({block.width} * "
                             f"{block.bottleneck_ratio:g}) = {inner} must be a positive multiple "
                             f"of group_width {block.group_width}", block.group_width)
    return block


def _inner_widths(block: StageSpec) -> tuple[tuple[str, int], ...]:
    """The inner widths a block's kind computes from its fields, by the field to blame."""
    if BLOCKS[block.block].grouped:
        return (("width_per_group", block.inner_width),)
    if block.block == "regnet":
        return (("bottleneck_ratio", round(block.width * block.bottleneck_ratio)),)
    if block.block == "dense":
        return (("bn_size", block.bn_size * block.width),)
    return ()


GROUP_NORM_GROUPS = 32  # resbench.blocks.layers.group_norm: gcd(32, C) groups


def _check_group_norm(size: int, stem: StemSpec, stages: tuple[StageSpec, ...]) -> None:
    """GroupNorm needs more than one value per group: a layer of C channels (in gcd(32, C)
    groups of C / gcd(32, C)) at 1x1 has one where C divides 32, which torch refuses."""
    def single(channels: int) -> bool:
        return channels // math.gcd(GROUP_NORM_GROUPS, channels) == 1

    for _ in range(STEMS[stem.kind].reduction.bit_length() - 1):
        size = -(-size // 2)  # each stride-2 layer of the stem rounds up
    if size == 1 and single(stem.width):
        raise ShapeError("stem.width", f"group norm over the stem's {stem.width} channels at 1x1 "
                         "would hold one value per group; use more channels, a larger "
                         "input_size or another norm", stem.width)
    for i, stage in enumerate(stages):
        size = -(-size // stage.stride)
        widths = {stage.width, stage.out_channels,
                  *(inner for b in _distinct_blocks(stage) for _, inner in _inner_widths(b))}
        if size == 1 and any(single(c) for c in widths):
            raise ShapeError(f"stages[{i}].width", "group norm over this stage's "
                             f"{min(c for c in widths if single(c))} channels at 1x1 would hold "
                             "one value per group; use more channels, a larger input_size or "
                             "another norm", stage.width)


def _check_sizes(stages: tuple[StageSpec, ...], channels: bool = False) -> None:
    """Bounds on what fields multiply to: blocks in all stages; then (``channels``, once the
    channel flow is resolved) channels of any layer."""
    if not channels:
        blocks = sum(s.depth for s in stages)
        if blocks > MAX_BLOCKS:
            raise ShapeError("stages", f"the stages have {blocks:,} blocks in all; at most "
                             f"{MAX_BLOCKS:,} are allowed", blocks)
        for i, stage in enumerate(stages):
            for b in _distinct_blocks(stage):
                for field, inner in _inner_widths(b):
                    if inner > MAX_CHANNELS:
                        raise ShapeError(f"stages[{i}].{field}", f"this stage's inner width has "
                                         f"{inner:,} channels; at most {MAX_CHANNELS:,} are "
                                         "allowed", getattr(b, field))
        return
    for i, stage in enumerate(stages):
        if stage.out_channels > MAX_CHANNELS:
            raise ShapeError(f"stages[{i}].width", f"this stage's output width has "
                             f"{stage.out_channels:,} channels; at most {MAX_CHANNELS:,} are "
                             "allowed", stage.width)


def _check_channel_kinds(where: str, plain: StageSpec, settings: list[StageSpec],
                         overrides: dict[int, tuple[Any, dict]]) -> None:
    """Transitions and concatenating blocks size their output from their input: a stage of them
    keeps one block kind and one shortcut, and a transition stands alone, without a skip."""
    sized = any(b.block in INPUT_SIZED_BLOCKS or SHORTCUTS[b.shortcut].concatenates
                for b in settings)
    if sized:
        for key, fields in overrides.values():
            for field in ("block", "shortcut"):
                if field in fields:
                    raise ShapeError(f"{where}.blocks[{key}].{field}", "the blocks of a stage of "
                                     "transitions or concatenating blocks keep the stage's block "
                                     "and shortcut (their channels follow from their input)",
                                     fields[field])
    if plain.block == "transition":
        if plain.depth != 1:
            raise ShapeError(f"{where}.depth", "a transition stage has one block", plain.depth)
        if plain.shortcut != "none":
            raise ShapeError(f"{where}.shortcut", "a transition has no shortcut: set shortcut: "
                             f"none, not {plain.shortcut!r}", plain.shortcut, ["none"])
    elif plain.width is None:
        raise ShapeError(f"{where}.width", "required field is missing")


def _resolve_channels(stem_width: int, stages: tuple[StageSpec, ...]) -> tuple[StageSpec, ...]:
    """Each stage's input channels (set on the stages given, which must be this spec's own:
    ``_resolve_stage``'s fresh copies), and a transition's width from its input and
    compression."""
    channels, out = stem_width, []
    for i, stage in enumerate(stages):
        if stage.block == "transition":
            width = int(channels * stage.compression)
            if width < 1:
                raise ShapeError(f"stages[{i}].compression", f"a transition of {channels} "
                                 f"channels compressed by {stage.compression:g} keeps none",
                                 stage.compression)
            if stage.width is not None and stage.width != width:
                came = _channels_story(stem_width, out)
                raise ShapeError(f"stages[{i}].width", f"channels do not add up: this transition "
                                 f"gets {came} and compresses them to int({channels} * "
                                 f"{stage.compression:g}) = {width}, but its width is "
                                 f"{stage.width}", stage.width)
            stage = stage.model_copy(update={"width": width})
        stage._in_channels = channels  # each stage here is _resolve_stage's, this spec's alone
        out.append(stage)
        channels = stage.out_channels
    return tuple(out)


def _channels_story(stem_width: int, before: list[StageSpec]) -> str:
    """How many channels reach the next stage, and how they add up (for errors)."""
    if not before:
        return f"{stem_width} channels (the stem's)"
    last = before[-1]
    if SHORTCUTS[last.shortcut].concatenates:
        return (f"{last.out_channels} channels ({last.in_channels} + {last.depth} blocks * "
                f"{last.width * last.expansion} of stages[{len(before) - 1}])")
    return f"{last.out_channels} channels (from stages[{len(before) - 1}])"


def _differences(first: StageSpec, other: StageSpec) -> dict[str, Any]:
    return {f: getattr(other, f) for f in BLOCK_FIELDS if getattr(other, f) != getattr(first, f)}


def _distinct_blocks(stage: StageSpec) -> list[StageSpec]:
    """Block 0's settings and those of every later block that differs (resolved stages)."""
    return [stage, *(stage.block_at(j) for j in stage.blocks or ())]


def _drop_unused_options(stage: StageSpec, out: dict[str, Any]) -> None:
    """Options other than ``ALWAYS_KEYED_OPTIONS`` appear only where the stage's kind uses them
    with a value other than the default: declaring an option, even on a kind that existed,
    changes no key."""
    for field, (axis, kind, option) in KIND_OPTIONS.items():
        if field in ALWAYS_KEYED_OPTIONS:
            continue
        if kind != getattr(stage, axis) or getattr(stage, field) == option.default:
            del out[field]


def _check_shapes(stem_width: int, stages: tuple[StageSpec, ...],
                  given: tuple[StageSpec, ...]) -> None:
    """Catch shortcut/shape combinations that cannot build, before any tensor exists: every
    block that can differ from its predecessor (the first two, and each one around a per-block
    setting) is checked."""
    channels = stem_width
    for i, (stage, raw) in enumerate(zip(stages, given)):
        changed = stage.blocks or {}
        overrides = _block_overrides(f"stages[{i}]", raw)[1]
        check = sorted({0, 1, *changed, *(j + 1 for j in changed), *overrides}
                       & set(range(stage.depth)))
        for j in check:
            block = stage.block_at(j)
            if j == 0:
                c_in = channels
            elif SHORTCUTS[block.shortcut].concatenates:  # a stage of one kind (checked)
                c_in = channels + j * _out_channels(block)
            else:
                c_in = _out_channels(stage.block_at(j - 1))
            stride = stage.stride if j == 0 else 1
            out = _out_channels(block)
            if info_concat := SHORTCUTS[block.shortcut].concatenates:
                if stride != 1:
                    raise ShapeError(f"stages[{i}].stride", "a concat shortcut keeps the "
                                     f"resolution, but this stage has stride {stride}; put a "
                                     "transition (block: transition, shortcut: none) with the "
                                     "stride before it", stride)
                out = c_in + out
            reshapes = (c_in != out or stride != 1) and not info_concat
            kind, info = block.shortcut, SHORTCUTS[block.shortcut]
            key, fields = overrides.get(j, (None, {}))
            where = (f"stages[{i}].blocks[{key}].shortcut" if "shortcut" in fields
                     else f"stages[{i}].shortcut")
            article = "an" if kind[0] in "aeiou" else "a"
            if reshapes and not info.reshapes:
                raise ShapeError(
                    where,
                    f"{article} {kind} shortcut cannot change shape, but block {j} of this stage "
                    f"maps {c_in} to {out} channels with stride {stride}",
                    kind, sorted(RESHAPING_SHORTCUTS))
            if not info.narrows and out < c_in:
                raise ShapeError(
                    where,
                    f"{article} {kind} shortcut can only add channels, but block {j} of this stage "
                    f"maps {c_in} to {out} channels", kind)
        channels = stage.out_channels


def _out_channels(block: StageSpec) -> int:
    return block.width * block.expansion
