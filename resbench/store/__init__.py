"""The results store: ``results/<experiment>/`` with a manifest and one atomic JSON record per trial.

Never imports torch; pandas is imported only by the ``load*`` functions.
"""
from resbench.store._load import experiment_folders, load, load_curves, load_grad_flow
from resbench.store._records import STATUSES, canonical_json, trial_key
from resbench.store._store import Store, experiment_dir, now_iso

__all__ = [
    "STATUSES",
    "Store",
    "canonical_json",
    "experiment_dir",
    "experiment_folders",
    "load",
    "load_curves",
    "load_grad_flow",
    "now_iso",
    "trial_key",
]
