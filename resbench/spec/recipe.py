"""Recipes: how a spec is trained (optimizer, schedule, epochs, data, precision, transfer...).

A recipe is a mapping validated once into a frozen :class:`Recipe`. Recipes come in layers that
are merged before validation (mappings merge, everything else is replaced), from lowest to
highest precedence::

    defaults < a spec file's ``recipe:`` < a suite's ``recipe:`` < one suite ``overrides`` entry
             < command-line flags (``--epochs``...)

so a suite can train every spec alike, and each override entry varies one thing.
No torch here: the spec layer only describes; ``resbench.train`` builds the objects.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from resbench.errors import SpecError, check_path_text, unknown
from resbench.spec.merge import merge
from resbench.spec.schema import MAX_INPUT_SIZE

__all__ = ["Recipe", "locate_layer", "merge_layers", "parse_recipe", "recipe_defaults",
           "set_layer"]


DIVERGENCE_FACTOR = 1e4  # default of ``Recipe.divergence_factor``


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class OptimizerConfig(_Frozen):
    """SGD (momentum, optionally Nesterov) or AdamW; ``lr`` is the peak learning rate."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.name == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")
        return self


class ScheduleConfig(_Frozen):
    """Per-step learning rate: linear warmup, then constant, step decay or cosine annealing."""

    name: Literal["constant", "step", "cosine"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    milestones: tuple[float, ...] = ()  # step: epochs at which the lr is multiplied by gamma
    gamma: float = Field(0.1, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)  # cosine: the lr reached at the last step

    @field_validator("milestones")
    @classmethod
    def _milestones_sorted(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if list(value) != sorted(set(value)) or any(m <= 0 for m in value):
            raise ValueError("milestones must be positive epochs in increasing order")
        return value


class AugmentConfig(_Frozen):
    """Training-time augmentation, applied to batches on the training device."""

    random_crop: bool = False
    padding: int = Field(4, ge=0)  # zero padding before the random crop
    hflip: bool = False


class DataConfig(_Frozen):
    """Which data set a trial trains on (see ``resbench.data.load_dataset``)."""

    name: str = "digits"
    root: str | None = None
    image_size: int | None = Field(None, gt=0, le=MAX_INPUT_SIZE)  # default: the data set's own
    val_fraction: float | None = Field(None, gt=0, lt=1)  # default: the test split, else 0.2
    limit: int | None = Field(None, gt=0)  # at most this many training examples
    download: bool = False
    options: dict[str, Any] = Field(default_factory=dict)  # data-set specific (synthetic's count...)

    @field_validator("root")
    @classmethod
    def _root_is_a_path(cls, value: str | None) -> str | None:
        if value is not None:
            check_path_text(value, what="root")  # no NUL byte, no over-long name
        return value


class TransferConfig(_Frozen):
    """Initialise from a checkpoint, replace the head, freeze stages, unfreeze them later.

    ``init`` is a torchvision ``state_dict`` file or one of ours (a state_dict, a trial
    checkpoint, or a stored trial's record file ``results/<experiment>/trials/<key>.json``,
    whose final weights it loads); a relative path is relative to the file that declares it. ``freeze`` names
    top-level parts of the model (``stem``, ``layer1``.. ``layerN``, ``head``); ``unfreeze``
    maps some of them to the (1-based) epoch from which they train again.
    """

    init: str | None = None
    replace_head: bool = True
    freeze: tuple[str, ...] = ()
    unfreeze: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unfreeze_frozen(self) -> TransferConfig:
        extra = sorted(set(self.unfreeze) - set(self.freeze))
        if extra:
            raise ValueError(f"unfreeze names parts that are not frozen: {', '.join(extra)}")
        if any(e < 1 for e in self.unfreeze.values()):
            raise ValueError("unfreeze epochs start at 1")
        return self


Seed = Annotated[int, Field(ge=0, lt=2**32)]
"""A training seed: numpy's and CUDA's generators take 32-bit seeds."""


class LesionConfig(_Frozen):
    """After training, remove each block's residual branch in turn, then ``k`` random blocks at
    once for k = 1..``max_k`` (default: every removable block), ``draws`` draws each."""

    draws: int = Field(3, ge=1)
    max_k: int | None = Field(None, ge=1)
    seed: int = 0  # of the random draws


class SignalConfig(_Frozen):
    """At initialisation: per block, the activations' squared channel mean and channel variance
    on one batch of ``examples`` training images (norm layers in training mode)."""

    examples: int = Field(128, ge=2)


class ShatterConfig(_Frozen):
    """At initialisation: the correlation of d(readout)/d(input) between neighbouring points on
    the line between two training images (``points`` of them), per block."""

    points: int = Field(64, ge=3)
    seed: int = 0  # of the readout projections


class LandscapeConfig(_Frozen):
    """The loss on ``examples`` training images along the line from the initial to the trained
    weights (``points`` values of alpha in [``alpha_min``, ``alpha_max``]), and on a ``grid`` x
    ``grid`` slice around the trained weights along two filter-normalised random directions,
    each scaled by up to ``radius``."""

    points: int = Field(21, ge=3)
    alpha_min: float = -0.25
    alpha_max: float = 1.25
    grid: int = Field(9, ge=3)
    radius: float = Field(1.0, gt=0)
    examples: int = Field(256, ge=1)
    seed: int = 0  # of the random directions

    @model_validator(mode="after")
    def _alpha_range(self) -> LandscapeConfig:
        if not (self.alpha_min <= 0 and self.alpha_max >= 1):
            raise ValueError("alpha_min <= 0 and alpha_max >= 1 (the path runs from init, 0, "
                             "to trained, 1)")
        return self


ANALYSES = ("lesion", "signal", "shatter", "landscape")
"""The analyses a recipe can ask for (``resbench.analysis``), in the order they run."""


class AnalysesConfig(_Frozen):
    """Which analyses a trial runs, each with its options (null: not run).

    Written as a list of names and mappings of names to options
    (``[lesion, {landscape: {grid: 7}}]``), or as one mapping of names to options, which merges
    across recipe layers like any mapping (there ``landscape: null`` turns one off).
    """

    lesion: LesionConfig | None = None
    signal: SignalConfig | None = None
    shatter: ShatterConfig | None = None
    landscape: LandscapeConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_list(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = [data]
        if not isinstance(data, (list, tuple)):
            return data
        out: dict[str, Any] = {}
        for item in data:
            if isinstance(item, str):
                out[item] = {}
            elif isinstance(item, Mapping):
                out.update({str(name): {} if options is None else options
                            for name, options in item.items()})
            else:
                raise ValueError("each analysis is a name or a mapping of names to their "
                                 f"options ({', '.join(ANALYSES)})")
        return out

    @property
    def names(self) -> tuple[str, ...]:
        """The analyses asked for, in the order they run."""
        return tuple(name for name in ANALYSES if getattr(self, name) is not None)


class Recipe(_Frozen):
    """How to train and measure one spec. Every field has a default; see module docstring."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()
    transfer: TransferConfig = TransferConfig()
    seeds: tuple[Seed, ...] = Field((0,), min_length=1, max_length=10_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    grad_probe_steps: tuple[int, ...] = (0, 10, 50)  # steps at which gradient flow is recorded
    latency_batch: int = Field(256, ge=1)  # the "large batch" of the inference latency
    # A training loss above this many times the first step's is ``diverged`` (null: only NaN/inf).
    divergence_factor: float | None = Field(DIVERGENCE_FACTOR, gt=1)
    save_weights: bool = True  # keep the final state_dict in <experiment>/weights/<key>.pt
    analyses: AnalysesConfig = AnalysesConfig()  # measured after training (resbench.analysis)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must be distinct")
        return value

    @field_validator("grad_probe_steps")
    @classmethod
    def _probe_steps(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(s < 0 for s in value):
            raise ValueError("grad_probe_steps must be >= 0")
        return tuple(sorted(set(value)))

    def trial_dict(self) -> dict[str, Any]:
        """The recipe of one trial, as stored and hashed: everything but the list of seeds,
        whether data may be downloaded, whether weights are kept and which analyses run (none
        changes what is trained); fields added later are left out at their defaults, so the
        keys of existing trials do not change."""
        data = self.model_dump(mode="json")
        for name in ("seeds", "save_weights", "analyses"):
            del data[name]
        del data["data"]["download"]
        if data["divergence_factor"] == DIVERGENCE_FACTOR:
            del data["divergence_factor"]
        return data


def recipe_defaults() -> dict[str, Any]:
    """The default recipe as plain data (the lowest layer)."""
    return Recipe().model_dump(mode="json")


def merge_layers(*layers: Mapping[str, Any] | None, file: str | Path | None = None,
                 path: str = "recipe") -> dict[str, Any]:
    """Merge recipe layers, later ones winning, with the spec language's one deep merge
    (:func:`resbench.spec.merge.merge`: mappings merge, lists take index overrides, anything
    else replaces)."""
    out: dict[str, Any] = {}
    for layer in layers:
        if layer:
            out = merge(out, layer, file=file, path=path)
    return out


def parse_recipe(data: Any, file: str | Path | None = None, path: str = "recipe") -> Recipe:
    """Validate ``data`` into a :class:`Recipe`; errors name ``file``, the field path and what is allowed."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(f"a recipe must be a mapping, got {type(data).__name__}", file=file,
                        path=path, value=data)
    from resbench.spec.load import parse_model

    return parse_model(Recipe, locate_layer(data, file), file=file, prefix=path)


def locate_layer(data: Mapping[str, Any], file: str | Path | None) -> dict[str, Any]:
    """A recipe layer with ``transfer.init`` made relative to ``file``, the file declaring it."""
    data = dict(data)
    transfer = data.get("transfer")
    if file is None or not isinstance(transfer, Mapping):
        return data
    init = transfer.get("init")
    if isinstance(init, str):
        check_path_text(init, what="init", file=file, path="transfer.init")
    if isinstance(init, str) and init and not Path(init).is_absolute():
        resolved = (Path(file).resolve().parent / init).resolve()
        data["transfer"] = {**transfer, "init": str(resolved)}
    return data


SET_FLAG = "--set"


def set_layer(assignments: Sequence[str] | None) -> dict[str, Any]:
    """Command-line overrides as a recipe layer: ``["recipe.epochs=5",
    "recipe.optimizer.lr=0.05"]`` -> ``{"epochs": 5, "optimizer": {"lr": 0.05}}``. Keys are
    dotted field paths under ``recipe``; values are parsed as YAML (``5``, ``0.05``, ``true``,
    ``[1, 2]``); the layer is validated as a recipe file's is, with the same messages."""
    import yaml

    layer: dict[str, Any] = {}
    for text in assignments or ():
        key, sep, raw = text.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise SpecError(f"expected KEY=VALUE with a dotted key, e.g. "
                            f"recipe.optimizer.lr=0.05, got {text!r}", file=SET_FLAG, value=text)
        if parts[0] != "recipe" or len(parts) < 2:
            raise unknown("section", parts[0], ["recipe"], file=SET_FLAG, path=key.strip(),
                          detail=" (--set changes recipe fields: recipe.epochs=5)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise SpecError(f"invalid YAML value {raw!r}: {getattr(exc, 'problem', None) or exc}",
                            file=SET_FLAG,
                            path=key.strip()) from None
        node = layer
        for depth, part in enumerate(parts[1:-1], start=2):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError("set both as a value and as a mapping", file=SET_FLAG,
                                path=".".join(parts[:depth]))
            node = child
        node[parts[-1]] = value
    if layer:
        parse_recipe(layer, file=SET_FLAG, path="recipe")
    return layer
