"""The results store: ``results/<experiment>/`` with a manifest and one atomic JSON record per trial.

Records are ``TrialRecord`` models (``_model.py``: the one schema every writer builds and every
read validates). Never imports torch; pandas is imported only by the ``load*`` functions.
"""
from resbench.store._check import Problem, check, move_aside
from resbench.store._claims import Claim, Claims, Owner
from resbench.store._load import (
    experiment_folders,
    load,
    load_curves,
    load_grad_flow,
    records_frame,
)
from resbench.store._model import (
    STATUSES,
    Analyses,
    LandscapeResult,
    LesionDraw,
    LesionResult,
    LesionRow,
    PathPoint,
    ShatterResult,
    ShatterRow,
    SignalResult,
    SignalRow,
    CurveRow,
    DataInfo,
    GradFlowRow,
    Metrics,
    RayInfo,
    SearchInfo,
    SuiteInfo,
    TrialRecord,
)
from resbench.store._records import StoreWriteError, canonical_json, trial_key, writing
from resbench.store._store import Store, experiment_dir, now_iso
from resbench.store._weights import (
    WEIGHTS,
    find_trial,
    load_model,
    trial_weights,
    weights_file,
    weights_name,
)

__all__ = [
    "Claim",
    "Claims",
    "STATUSES",
    "WEIGHTS",
    "Analyses",
    "LandscapeResult",
    "LesionDraw",
    "LesionResult",
    "LesionRow",
    "PathPoint",
    "ShatterResult",
    "ShatterRow",
    "SignalResult",
    "SignalRow",
    "CurveRow",
    "DataInfo",
    "GradFlowRow",
    "Metrics",
    "Owner",
    "Problem",
    "RayInfo",
    "SearchInfo",
    "Store",
    "StoreWriteError",
    "SuiteInfo",
    "TrialRecord",
    "canonical_json",
    "check",
    "experiment_dir",
    "experiment_folders",
    "find_trial",
    "load_model",
    "load",
    "load_curves",
    "load_grad_flow",
    "move_aside",
    "now_iso",
    "records_frame",
    "trial_key",
    "writing",
    "trial_weights",
    "weights_file",
    "weights_name",
]
