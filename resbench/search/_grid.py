"""A GridSampler for ask-and-tell loops (imports optuna: load it only when a grid is asked for).

Optuna's GridSampler calls ``study.stop()`` once the grid is used up, which only works inside
``study.optimize``; the runners here ask and tell themselves and stop at their trial budget.
"""
from __future__ import annotations

from typing import Any

import optuna


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Every grid point once (then repeats), without stopping the study itself."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None
