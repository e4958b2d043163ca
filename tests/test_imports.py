"""Import hygiene: `import resbench` is light, and the lower layers do not reach up."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "torchvision", "ray", "optuna", "matplotlib", "pandas"]


def loaded_after(statement: str) -> list[str]:
    code = (f"import sys, json\n{statement}\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import resbench",
    "import resbench.spec; resbench.spec.json_schema()",
    "import resbench.store",
    "import resbench.cli; resbench.cli.build_parser()",
])
def test_light_imports_pull_in_no_heavy_package(statement):
    assert loaded_after(statement) == []


def test_loading_a_spec_does_not_import_torch(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text("stem: cifar\nshortcut: zero_pad\nstages: [{depth: 1, width: 16}]\n")
    assert loaded_after(f"import resbench; resbench.load_spec({str(spec)!r})") == []


def test_public_api_resolves_lazily():
    import resbench

    assert callable(resbench.build) and callable(resbench.cost) and callable(resbench.load_spec)
    assert issubclass(resbench.SpecError, resbench.UserError)
    with pytest.raises(AttributeError):
        resbench.no_such_name  # noqa: B018
