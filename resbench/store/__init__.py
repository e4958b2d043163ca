"""The results store: ``results/<experiment>/`` with a manifest and one atomic JSON record per trial.

Records are ``TrialRecord`` models (``_model.py``: the one schema every writer builds and every
read validates). Never imports torch; pandas is imported only by the ``load*`` functions.
"""
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
from resbench.store._records import canonical_json, trial_key
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
    "RayInfo",
    "SearchInfo",
    "Store",
    "SuiteInfo",
    "TrialRecord",
    "canonical_json",
    "experiment_dir",
    "experiment_folders",
    "find_trial",
    "load_model",
    "load",
    "load_curves",
    "load_grad_flow",
    "now_iso",
    "records_frame",
    "trial_key",
    "trial_weights",
    "weights_file",
    "weights_name",
]
