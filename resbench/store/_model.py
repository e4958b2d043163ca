"""The trial record: one typed model that every writer builds and the store checks on write and read.

A field is added in one place, here, with a default (usually ``None``), so records written
before it existed still load. What a record holds on disk is what its writer set (or what
the file held when it was read): ``to_json`` leaves out fields nobody set, so a suite record
has no ``search`` and a trial that never resumed has no ``resumed_from_epoch``.

Unknown fields in a file (written by a newer resbench) are kept and written back unchanged;
in code, constructing a record with a field the model does not declare (at any depth) is a
``ValueError`` and assigning one a ``TypeError``, so a writer's typo never reaches the disk. A file that breaks the schema is refused, naming the field.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from resbench.errors import shown
from resbench.store._records import _plain

Status = Literal["completed", "diverged", "failed", "pruned", "infeasible"]
STATUSES: tuple[str, ...] = get_args(Status)
"""Every trial status, in the order tables list them."""

def _fraction(value: float | None) -> float | None:
    if value is not None and not math.isnan(value) and not 0.0 <= value <= 1.0:
        raise ValueError(f"an accuracy is a fraction in [0, 1], got {value}")
    return value


Fraction = Annotated[float | None, AfterValidator(_fraction)]
"""An accuracy: a fraction in [0, 1] (NaN and null allowed, as for every number)."""


_FROM_DATA: dict[str, bool] = {"from_data": True}  # validation context of from_json


class RecordPart(BaseModel):
    """Base of the record and its sections: typed, validated on assignment, unknown fields in
    data kept (forward compatibility) but refused as keyword arguments or attributes in code."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _declared_fields_only(cls, data: Any, info: ValidationInfo) -> Any:
        """Unknown fields are kept only when reading data (``from_json``), refused in code.

        Assigning one of this model's fields re-validates the whole model (``info.field_name``
        names the field): its names are checked by ``__setattr__`` instead."""
        assigning = info.field_name in cls.model_fields
        if info.context is not _FROM_DATA and not assigning and isinstance(data, Mapping):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"{cls.__name__} has no field {', '.join(unknown)} "
                                 "(record fields are declared in resbench/store/_model.py)")
        return data

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self).model_fields:
            raise TypeError(f"{type(self).__name__} has no field {name!r} "
                            "(record fields are declared in resbench/store/_model.py)")
        super().__setattr__(name, value)

    def get(self, name: str, default: Any = None) -> Any:
        """A field by name, declared or kept from the file (``default`` when absent or null)."""
        if name in type(self).model_fields:
            value = getattr(self, name)
        else:
            value = (self.__pydantic_extra__ or {}).get(name)
        return default if value is None else value

    def to_json(self) -> dict[str, Any]:
        """The JSON form: the fields that were set, non-finite numbers as null."""
        return _plain(self.model_dump(exclude_unset=True))


class Metrics(RecordPart):
    """What a trial measured; a trial that never trained has only its cost and ``epochs: 0``."""

    params: int | None = None
    macs: int | None = None
    best_val_acc: Fraction = None
    final_val_acc: Fraction = None
    final_val_loss: float | None = None
    final_train_loss: float | None = None
    final_train_acc: Fraction = None
    epochs: int | None = None
    images_per_s: float | None = None  # median over epochs
    train_time_s: float | None = None  # training steps only
    total_time_s: float | None = None  # the whole trial, across resumptions
    analysis_time_s: float | None = None  # of recipe.analyses, after training (in total_time_s)
    peak_memory_bytes: int | None = None
    peak_memory_kind: str | None = None  # cuda_max_allocated or process_max_rss
    latency_ms_b1: float | None = None
    latency_ms_bn: float | None = None
    latency_batch: int | None = None


class CurveRow(RecordPart):
    """One epoch of training."""

    epoch: int
    train_loss: float | None = None
    train_acc: Fraction = None
    val_loss: float | None = None
    val_acc: Fraction = None
    images_per_s: float | None = None
    train_time_s: float | None = None
    epoch_time_s: float | None = None
    lr: float | None = None


class GradFlowRow(RecordPart):
    """The gradient-flow probe at one step and block."""

    step: int
    block: str
    index: int
    grad_norm: float | None = None  # of the loss w.r.t. the block's output
    param_grad_norm: float | None = None  # of the block's parameters


class DataInfo(RecordPart):
    """The data a trial trained on."""

    dataset: str
    num_classes: int
    in_channels: int
    image_size: int
    train_size: int
    val_size: int


class SuiteInfo(RecordPart):
    """Where a suite's trial sits in its matrix."""

    name: str
    override: int = 0  # index into the suite's ``overrides``
    spec_file: str | None = None


class RayInfo(RecordPart):
    """Where and when a Ray trial ran (times are Unix seconds)."""

    node_id: str
    gpu_ids: list[str] = Field(default_factory=list)
    started: float | None = None
    finished: float | None = None


class SearchInfo(RecordPart):
    """Which search drew the trial, and how."""

    runner: Literal["optuna", "ray"]
    study: str
    trial_number: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)  # the sampled point, by parameter name
    worker: int | None = None  # id of the process that trained it (local or Ray worker)
    ray: RayInfo | None = None


class LesionRow(RecordPart):
    """Validation accuracy with one block's residual branch removed (Veit et al. 2016)."""

    block: str
    index: int
    downsample: bool  # the block changes the shape (its shortcut carries a stride or projection)
    removable: bool  # False: a plain block that changes the shape has nothing to fall back on
    val_acc: Fraction = None


class LesionDraw(RecordPart):
    """Validation accuracy with ``k`` random blocks removed at once."""

    k: int
    draw: int
    blocks: list[int] = Field(default_factory=list)  # indices of the removed blocks
    val_acc: Fraction = None


class LesionResult(RecordPart):
    """A lesion study of the trained net."""

    val_acc: Fraction = None  # intact
    val_size: int | None = None
    blocks: list[LesionRow] = Field(default_factory=list)
    random: list[LesionDraw] = Field(default_factory=list)


class SignalRow(RecordPart):
    """Statistics of one block's output at initialisation (Brock et al. 2021)."""

    block: str
    index: int
    mean_sq_channel_mean: float | None = None  # mean over channels of (mean over N, H, W)^2
    channel_variance: float | None = None  # mean over channels of the variance over N, H, W


class SignalResult(RecordPart):
    examples: int | None = None
    rows: list[SignalRow] = Field(default_factory=list)


class ShatterRow(RecordPart):
    """Correlation of neighbouring input gradients of a readout after one block (Balduzzi 2017)."""

    block: str
    index: int
    correlation: float | None = None


class ShatterResult(RecordPart):
    points: int | None = None
    rows: list[ShatterRow] = Field(default_factory=list)
    output_correlation: float | None = None  # of the logits' readout


class PathPoint(RecordPart):
    """The loss at ``(1 - alpha) * initial + alpha * trained`` weights (Goodfellow et al. 2015)."""

    alpha: float
    loss: float | None = None
    acc: Fraction = None


class LandscapeResult(RecordPart):
    """The 1-D path from initial to trained weights and a 2-D slice around the trained ones."""

    examples: int | None = None
    path: list[PathPoint] = Field(default_factory=list)
    coords: list[float] = Field(default_factory=list)  # of both axes of the slice
    surface: list[list[float | None]] = Field(default_factory=list)  # loss[i][j] at (coords[i], coords[j])


class Analyses(RecordPart):
    """What the recipe's analyses measured (``resbench.analysis``); each absent when not run."""

    lesion: LesionResult | None = None
    signal: SignalResult | None = None
    shatter: ShatterResult | None = None
    landscape: LandscapeResult | None = None


class TrialRecord(RecordPart):
    """One trial: what ran (spec, recipe, seed, data), how it ended, and what it measured."""

    key: str  # sha256(canonical spec + recipe + seed)[:16], see trial_key
    experiment: str
    spec_name: str
    spec_key: str
    spec: dict[str, Any] = Field(default_factory=dict)  # canonical spec + name
    summary: dict[str, Any] = Field(default_factory=dict)  # spec.summary_fields()
    recipe: dict[str, Any] = Field(default_factory=dict)  # the resolved trial recipe
    seed: int
    data: DataInfo | None = None
    status: Status
    reason: str | None = None  # why it did not complete
    metrics: Metrics = Field(default_factory=Metrics)
    curves: list[CurveRow] = Field(default_factory=list)
    grad_flow: list[GradFlowRow] = Field(default_factory=list)
    suite: SuiteInfo | None = None  # suites only
    search: SearchInfo | None = None  # searches only
    attempts: int | None = None  # searches: runs of a trial that failed before this one
    resumed_from_epoch: int | None = None  # continued from this epoch's checkpoint
    traceback: str | None = None  # failed trials
    weights: str | None = None  # final state_dict, relative to the experiment folder
    analyses: Analyses | None = None
    started_at: str | None = None  # ISO-8601
    finished_at: str | None = None

    @field_validator("spec", "summary", "recipe", "metrics", "curves", "grad_flow", mode="before")
    @classmethod
    def _null_as_empty(cls, value: Any, info: Any) -> Any:
        """Older hand-made records may hold null for an empty section."""
        if value is not None:
            return value
        return [] if info.field_name in ("curves", "grad_flow") else {}

    @classmethod
    def from_json(cls, data: Any) -> TrialRecord:
        """Validate a record's JSON form (a file's or a message's); a ValueError says what is wrong."""
        if isinstance(data, TrialRecord):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"a trial record must be a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data), context=_FROM_DATA)
        except ValidationError as e:
            raise ValueError(describe(e)) from None


REQUIRED_KEYS = tuple(name for name, f in TrialRecord.model_fields.items() if f.is_required())
"""The fields without a default: every record on disk has them."""


def describe(error: ValidationError) -> str:
    """A validation error in one line: missing keys, or each bad field with its value."""
    errors = error.errors()
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"trial record is missing required keys: {', '.join(missing)}"
    parts = []
    for e in errors:
        path = _path(e["loc"])
        if e["loc"] == ("status",):
            parts.append(f"status {shown(e['input'])} is not one of {', '.join(STATUSES)}")
        elif e["type"] in ("model_type", "dict_type", "model_attributes_type"):
            parts.append(f"field {path!r} must be a JSON object, got {shown(e['input'])}")
        elif e["type"] == "list_type":
            parts.append(f"field {path!r} must be a JSON array, got {shown(e['input'])}")
        else:
            message = e["msg"].removeprefix("Value error, ")
            parts.append(f"field {path!r}: {message[:200]} (got {shown(e['input'])})" if path
                         else message[:200])
    unique = list(dict.fromkeys(parts))
    more = f"; and {len(unique) - 10} more problems" if len(unique) > 10 else ""
    return "; ".join(unique[:10]) + more


def _path(loc: tuple[Any, ...]) -> str:
    """``("curves", 2, "val_acc")`` → ``curves[2].val_acc``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith("function-"):  # pydantic's name for a validator step
            text += f".{part}" if text else str(part)
    return text
