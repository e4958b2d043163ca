"""Search over spaces of specs: Optuna in-process (``local``) or Ray Tune across a cluster (``ray``).

Both runners sample the same :class:`resbench.spec.space.Space`, check cost constraints before
any training, skip points already in the results store, and write the same trial records.
Optuna and Ray are imported only by the functions that use them.
"""
from resbench.search.config import SearchConfig, SearchResult
from resbench.search.objectives import OBJECTIVES, Objective, parse_objectives

__all__ = ["OBJECTIVES", "Objective", "SearchConfig", "SearchResult", "parse_objectives", "run_search"]


def run_search(config: SearchConfig) -> SearchResult:
    """Run (or resume) a search with the runner the config names (Optuna logs warnings only
    while it runs)."""
    from resbench._compat.optuna import quiet

    with quiet():
        if config.runner == "ray":
            from resbench.search.ray_runner import run_ray

            return run_ray(config)
        from resbench.search.local import run_local

        return run_local(config)
