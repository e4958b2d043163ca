"""Named objectives: what a search optimises, read from a trial record's metrics."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from resbench.errors import unknown

if TYPE_CHECKING:
    from resbench.store import TrialRecord


@dataclass(frozen=True)
class Objective:
    """One optimisation target: the record metric it reads and its direction."""

    name: str
    metric: str
    direction: Literal["maximize", "minimize"]
    per_epoch: str | None = None  # the curve column reported each epoch (enables pruning)

    @property
    def mode(self) -> str:
        """Ray Tune's spelling of the direction."""
        return "max" if self.direction == "maximize" else "min"

    def value(self, record: TrialRecord) -> float | None:
        value = record.metrics.get(self.metric)
        return None if value is None else float(value)


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("val_acc", "best_val_acc", "maximize", per_epoch="val_acc"),
    Objective("macs", "macs", "minimize"),
    Objective("params", "params", "minimize"),
    Objective("latency", "latency_ms_b1", "minimize"),
)}


def parse_objectives(names: Sequence[str], *, file: str | None = None,
                     path: str = "objectives") -> tuple[Objective, ...]:
    """Objectives by name; an unknown one is a located SpecError listing the known ones."""
    out = []
    for i, name in enumerate(names):
        if name not in OBJECTIVES:
            raise unknown("objective", name, sorted(OBJECTIVES), file=file, path=f"{path}[{i}]")
        out.append(OBJECTIVES[name])
    return tuple(out)


def values(objectives: Sequence[Objective], record: TrialRecord) -> list[float] | None:
    """The record's objective values, or None when any is missing (a failed trial)."""
    out = [o.value(record) for o in objectives]
    return None if any(v is None for v in out) else out  # type: ignore[return-value]
