"""Canary for ``resbench/_compat``: every private attribute and signature an adapter relies on
still exists in the installed optuna, ray and torch, and each adapter works on them for real.
An upgrade that breaks one fails here, naming the adapter to update, instead of deep inside a
search. ``pyproject.toml`` caps optuna and ray at the series these tests passed with."""
from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@contextlib.contextmanager
def adapter(library: str, what: str) -> Iterator[None]:
    """Turn a broken private API into a message that says where to fix it."""
    try:
        yield
    except (AttributeError, TypeError, KeyError, ImportError) as exc:
        pytest.fail(f"{library} {metadata.version(library)} broke resbench/_compat/"
                    f"{library}.py ({what}): {type(exc).__name__}: {exc}. Update the adapter, "
                    f"then the cap on {library} in pyproject.toml.")


def declared(name: str) -> Requirement:
    for line in re.findall(r'^\s*"([^"]+)",', PYPROJECT.read_text(), flags=re.M):
        requirement = Requirement(line)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


@pytest.mark.parametrize("library, distribution", [("optuna", "optuna"), ("ray", "ray"),
                                                   ("torch", "torch")])
def test_installed_versions_are_inside_the_declared_caps(library, distribution):
    requirement = declared(distribution)
    version = metadata.version(distribution)
    assert any(s.operator in ("<", "<=") for s in requirement.specifier), \
        f"{distribution} has no upper bound in pyproject.toml; cap it at the tested series"
    assert requirement.specifier.contains(version, prereleases=True), \
        f"{distribution} {version} is outside pyproject's {requirement.specifier}"


def test_optuna_storage_adapter(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from resbench._compat.optuna import fail_trial, stored_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    running = study.ask()
    done = study.ask()
    study.tell(done, 1.0)
    with adapter("optuna", "stored_trial: Study._storage.get_trial, Trial._trial_id"):
        assert stored_trial(study, running).state == TrialState.RUNNING
        frozen = next(t for t in study.get_trials() if t.number == done.number)
        assert stored_trial(study, frozen).state == TrialState.COMPLETE
    with adapter("optuna", "fail_trial: set_trial_user_attr, set_trial_state_values"):
        left = next(t for t in study.get_trials() if t.state == TrialState.RUNNING)
        fail_trial(study, left, {"discarded": "interrupted"})
    # Another process opening the study sees the trial failed, marked, and not re-asked.
    again = optuna.load_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    (t,) = [t for t in again.get_trials() if t.number == running.number]
    assert t.state == TrialState.FAIL and t.user_attrs == {"discarded": "interrupted"}


def test_ray_searcher_adapter():
    from ray.tune.search.optuna import OptunaSearch

    from resbench._compat.ray import is_told, mark_told, optuna_study, optuna_trial

    def space(trial):
        trial.suggest_float("lr", 0.01, 0.1, log=True)

    searcher = OptunaSearch(space=space, metric="val_acc", mode="max")
    point = searcher.suggest("t1")
    with adapter("ray", "OptunaSearch._ot_trials, _ot_study, _completed_trials"):
        trial = optuna_trial(searcher, "t1")
        assert trial is not None and trial.params == point
        assert optuna_trial(searcher, "t2") is None
        assert [t.number for t in optuna_study(searcher).get_trials()] == [trial.number]
        assert not is_told(searcher, "t1")
        searcher.on_trial_complete("t1", {"val_acc": 0.5})
        assert is_told(searcher, "t1")  # upstream marks what it told in the same set
        searcher.suggest("t3")
        mark_told(searcher, "t3")
        searcher.on_trial_complete("t3", {"val_acc": 0.9})  # told already: ignored upstream
    states = [t.state.name for t in optuna_study(searcher).get_trials()]
    assert states == ["COMPLETE", "RUNNING"]


def test_ray_tuner_and_snapshot_adapters(tmp_path, monkeypatch):
    import os

    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    from resbench._compat.ray import SNAPSHOT_ENV, set_callbacks, snapshot_period

    class Mark(tune.Callback):
        pass

    tuner = tune.Tuner(lambda config: None,
                       run_config=tune.RunConfig(storage_path=str(tmp_path), name="x",
                                                 callbacks=[tune.Callback()]))
    mark = Mark()
    with adapter("ray", "Tuner._local_tuner._run_config"):
        set_callbacks(tuner, [mark])
        assert tuner._local_tuner.get_run_config().callbacks == [mark]
    with adapter("ray", "TuneController reads TUNE_GLOBAL_CHECKPOINT_S"):
        assert "checkpoint_period" in inspect.signature(TuneController.__init__).parameters
        assert SNAPSHOT_ENV in inspect.getsource(TuneController.__init__)
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    with snapshot_period(1):
        assert os.environ[SNAPSHOT_ENV] == "1"
    assert SNAPSHOT_ENV not in os.environ  # the environment is left as it was
    monkeypatch.setenv(SNAPSHOT_ENV, "30")
    with snapshot_period(1):
        assert os.environ[SNAPSHOT_ENV] == "30"  # the user's own setting wins
    assert os.environ[SNAPSHOT_ENV] == "30"


def test_torch_dispatch_adapter():
    import torch

    from resbench._compat.torch import TorchDispatchMode, fresh_outputs

    class Fresh(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.bytes = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.bytes += sum(t.numel() * t.element_size() for t in fresh_outputs(func, out))
            return out

    x = torch.ones(4, 8)
    with adapter("torch", "TorchDispatchMode, OpOverload._schema.returns[i].alias_info"):
        with Fresh() as mode:
            y = x @ x.T          # new memory: 4x4 float32
            y.view(16)           # a view: no new memory
            y.add_(1)            # in place: no new memory
            values, indices = torch.max(y, dim=1)  # two fresh outputs
    assert mode.bytes == 4 * 4 * 4 + 4 * 4 + 4 * 8


def test_ray_sigint_and_token_auth_adapters(tmp_path, monkeypatch):
    import os

    from ray._raylet import AuthenticationMode, get_authentication_mode
    from ray.tune import tune as tune_module

    from resbench._compat.ray import AUTH_MODE_ENV, SIGINT_ENV, has_token, sigint_raises, token_auth

    with adapter("ray", "tune.run reads TUNE_DISABLE_SIGINT_HANDLER"):
        assert SIGINT_ENV in inspect.getsource(tune_module._setup_signal_catching)
    monkeypatch.delenv(SIGINT_ENV, raising=False)
    with sigint_raises():
        assert os.environ[SIGINT_ENV] == "1"
    assert SIGINT_ENV not in os.environ

    for name in (AUTH_MODE_ENV, "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with adapter("ray", "ray._raylet.AuthenticationTokenLoader.has_token, Config.initialize"):
        assert not has_token()
        with token_auth() as mode:
            assert mode == "disabled" and AUTH_MODE_ENV not in os.environ
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("c" * 32)
        assert has_token()
        with token_auth() as mode:  # what `ray start --head` does with a token on the machine
            assert mode == "token" and get_authentication_mode() == AuthenticationMode.TOKEN
        assert AUTH_MODE_ENV not in os.environ
        assert get_authentication_mode() != AuthenticationMode.TOKEN  # put back
    monkeypatch.setenv(AUTH_MODE_ENV, "disabled")
    with token_auth() as mode:
        assert mode == "disabled"  # the user's choice wins


def test_torch_flop_formula_and_device_constructors_adapters():
    import torch

    from resbench._compat.torch import device_constructors, flop_formula

    x, w = torch.empty(2, 3, 8, 8, device="meta"), torch.empty(5, 3, 3, 3, device="meta")
    out = torch.ops.aten.convolution.default(x, w, None, [1], [0], [1], False, [0], 1)
    with adapter("torch", "torch.utils.flop_counter.flop_registry"):
        formula = flop_formula(torch.ops.aten.convolution.default)
        flops = formula(x, w, None, [1], [0], [1], False, [0], 1, out_val=out)
    assert flops == 2 * (2 * 5 * 6 * 6) * (3 * 3 * 3)  # 2 x MACs
    assert flop_formula(torch.ops.aten.relu.default) is None
    with adapter("torch", "torch.utils._device._device_constructors"):
        constructors = device_constructors()
    assert {torch.empty, torch.zeros, torch.ones, torch.tensor} <= set(constructors)
