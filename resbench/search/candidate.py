"""A sampled point made concrete: validated spec and recipe, trial key, cost, feasibility.

Shared by both runners, so a point gets the same key, the same constraint check and the same
record whichever runner drew it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resbench.errors import SpecError
from resbench.search.config import SearchConfig
from resbench.spec import Spec, parse_spec
from resbench.spec.recipe import Recipe, merge_layers, parse_recipe
from resbench.store import CurveRow, DataInfo, Metrics, SearchInfo, TrialRecord, now_iso

if TYPE_CHECKING:
    from resbench.train.datacache import DataCache

DATA_SETS_PER_WORKER = 2  # loaded data sets a search process keeps (resbench.train.DataCache)


@dataclass
class Candidate:
    """One point of the space, ready to train (or to reject without training)."""

    spec: Spec
    recipe: Recipe
    seed: int
    params: dict[str, Any]
    key: str
    adapted: Spec  # the spec fitted to the data (channels, classes, size), as records store it
    data_meta: DataInfo
    cost: dict[str, int]
    violations: list[str] = field(default_factory=list)
    data: Any = field(default=None, repr=False)  # the loaded data set (kept in memory, not pickled)

    @property
    def feasible(self) -> bool:
        return not self.violations


def make_candidate(config: SearchConfig, spec_dict: Mapping[str, Any],
                   recipe_dict: Mapping[str, Any], params: Mapping[str, Any],
                   cache: DataCache) -> Candidate:
    """Validate a sampled point and cost it; an invalid point is a bug in the space: it raises."""
    file = config.space.file
    try:
        spec = parse_spec(spec_dict, file=file)
        recipe = parse_recipe(merge_layers(recipe_dict, config.recipe_overrides, file=file),
                              file=file)
    except SpecError as exc:
        raise SpecError(f"a sampled point is invalid (the space allows a combination the spec "
                        f"language refuses; narrow the space or add a $when): {exc.message}; "
                        f"sampled {dict(params)}", file=file, path=exc.path, value=exc.value,
                        allowed=exc.allowed) from None
    from resbench.compile import cost
    from resbench.memory import TooLarge
    from resbench.train.loop import resolve_device
    from resbench.train.trial import check_fits, data_meta, trial_identity

    seed = config.seed if config.seed is not None else recipe.seeds[0]
    data = cache.get(recipe.data)
    adapted, key = trial_identity(spec, recipe, seed, data)
    c = cost(adapted, input_size=data.image_size)
    costs = {"params": int(c.params), "macs": int(c.macs)}
    violations = []
    try:
        check_fits(adapted, recipe, c.params, c.activation_bytes, resolve_device(recipe.device))
    except TooLarge as exc:  # recorded infeasible, never trained
        violations.append(str(exc))
    except RuntimeError:  # recipe.device is cuda and there is none: the trial says so
        pass
    for name, limit in (("params", config.max_params), ("macs", config.max_macs)):
        if limit is not None and costs[name] > limit:
            violations.append(f"{name} {costs[name]:,} > max_{name} {limit:,}")
    return Candidate(spec=spec, recipe=recipe, seed=seed, params=dict(params), key=key,
                     adapted=adapted, data_meta=data_meta(data), cost=costs, violations=violations,
                     data=data)


def search_info(runner: str, config: SearchConfig, number: int | None,
                params: Mapping[str, Any], **more: Any) -> SearchInfo:
    """The ``search`` field of a record (``more``: the runner's own, ``worker`` or ``ray``)."""
    return SearchInfo(runner=runner, study=config.study_name, trial_number=number,
                      params=dict(params), **more)


def untrained_record(config: SearchConfig, cand: Candidate, status: str, reason: str,
                     search: SearchInfo, curves: list[CurveRow] | None = None) -> TrialRecord:
    """A record for a trial that did not run to the end in ``run_trial``'s hands: infeasible
    (never trained), failed after its retries, or stopped by a Ray scheduler (with its curves)."""
    curves = list(curves or [])
    if curves:
        last = curves[-1]
        metrics = Metrics(**cand.cost, best_val_acc=max(r.val_acc for r in curves),
                          final_val_acc=last.val_acc, final_val_loss=last.val_loss,
                          final_train_loss=last.train_loss, final_train_acc=last.train_acc,
                          epochs=len(curves),
                          total_time_s=sum(r.epoch_time_s or 0.0 for r in curves))
    else:
        metrics = Metrics(**cand.cost, epochs=0)
    now = now_iso()
    return TrialRecord(
        key=cand.key, experiment=config.experiment, spec_name=cand.spec.name,
        spec_key=cand.adapted.key(), spec={**cand.adapted.canonical(), "name": cand.spec.name},
        summary=cand.adapted.summary_fields(), recipe=cand.recipe.trial_dict(), seed=cand.seed,
        data=cand.data_meta, status=status, reason=reason, metrics=metrics, curves=curves,
        grad_flow=[], search=search, started_at=now, finished_at=now)
