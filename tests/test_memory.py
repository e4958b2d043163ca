"""Size guards: a network too large for the machine is refused from cost()'s numbers, before
anything is allocated: by show (exit 2), as a failed trial in a suite, as infeasible in a search."""
from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from resbench import memory
from resbench.cli import main
from resbench.compile import cost
from resbench.spec import parse_spec
from resbench.spec.recipe import parse_recipe

# ~10^13 parameters: more than any machine's memory, yet a spec the schema allows.
HUGE = {"stem": "cifar", "num_classes": 10, "stages": [{"depth": 1, "width": 1_000_000}]}
SMALL = {"stem": "cifar", "num_classes": 10, "stages": [{"depth": 1, "width": 8}]}


def test_estimates_count_weights_gradients_optimizer_state_and_activations():
    c = cost(parse_spec(SMALL))
    assert memory.inference(c.params, c.activation_bytes).total == 4 * c.params + c.activation_bytes
    sgd = memory.training(c.params, c.activation_bytes, 64, "sgd")
    adamw = memory.training(c.params, c.activation_bytes, 64, "adamw")
    assert sgd.total == 3 * 4 * c.params + 64 * c.activation_bytes
    assert adamw.total - sgd.total == 4 * c.params


def test_available_memory_is_the_machines_or_the_address_space_limit():
    total = memory.available_bytes()
    assert total is not None and 2**28 < total
    limit = 3 * 2**30
    code = "from resbench.memory import available_bytes; print(available_bytes())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS,
                                                               (limit, limit)))
    assert int(out.stdout) == min(limit, total)


def test_check_refuses_with_the_numbers():
    with pytest.raises(memory.TooLarge, match=r"needs an estimated 2\.0 GiB .* only 1\.0 GiB"):
        memory.check(memory.Estimate(2**30, 2**30, "training"), 2**30, name="spec 'x'")
    memory.check(memory.Estimate(2**29, 2**29, "training"), 2**30)


def test_show_refuses_a_spec_larger_than_memory(tmp_path, capsys):
    import yaml

    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(HUGE))
    assert main(["show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: spec 'huge' is too large for this machine: a forward pass")


def test_a_trial_too_large_for_memory_is_recorded_failed_with_the_reason():
    from resbench.train import run_trial

    recipe = parse_recipe({"epochs": 1, "data": {"name": "digits", "limit": 40}})
    record = run_trial(parse_spec({**HUGE, "name": "huge"}), recipe, seed=0)
    assert record.status == "failed" and record.traceback is None
    assert record.reason.startswith("spec 'huge' is too large for this machine's memory: "
                                    "training at batch 128 with sgd needs an estimated")
    assert record.metrics.params > 10**12 and not record.curves


def test_a_search_point_too_large_for_memory_is_infeasible(tmp_path):
    from resbench.search.candidate import make_candidate
    from resbench.search.config import SearchConfig
    from resbench.spec.space import parse_space
    from resbench.train import DataCache

    space = parse_space({**SMALL, "recipe": {"epochs": 1, "data": {"name": "digits"}},
                         "search": {"trials": 1}}, file="space.yaml")
    config = SearchConfig.from_space(space, results_root=tmp_path)
    cache = DataCache()
    small = make_candidate(config, SMALL, {"data": {"name": "digits"}}, {}, cache)
    huge = make_candidate(config, HUGE, {"data": {"name": "digits"}}, {}, cache)
    assert small.feasible and not huge.feasible
    assert "too large for this machine's memory" in huge.violations[0]
