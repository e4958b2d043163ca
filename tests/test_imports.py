"""Import hygiene: `import resbench` is light, and the lower layers do not reach up.

The layering rules are the "Import rules" table of docs/ARCHITECTURE.md: this test reads that
table and checks every import statement of every module against it (imports inside functions
too), so the document and the code cannot drift apart.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "resbench"
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
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


def test_public_api_resolves_lazily_to_the_real_objects():
    """``resbench.build`` is the compiler's own function, loaded on first use: torch is imported
    only when a torch-backed name is asked for, and the names work."""
    code = ("import sys, resbench\n"
            "before = 'torch' in sys.modules\n"
            "spec = resbench.parse_spec({'stem': 'cifar', 'stages': [{'depth': 1, 'width': 8}]})\n"
            "after_spec = 'torch' in sys.modules\n"
            "import resbench.compile\n"
            "same = resbench.build is resbench.compile.build and resbench.cost is resbench.compile.cost\n"
            "model = resbench.build(spec)\n"
            "print(before, after_spec, same, resbench.cost(spec).params == "
            "sum(p.numel() for p in model.parameters()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True", "True"]
    import resbench

    assert issubclass(resbench.SpecError, resbench.UserError)  # the CLI's exit-2 class
    with pytest.raises(AttributeError):
        resbench.no_such_name  # noqa: B018


# ----- the import rules of docs/ARCHITECTURE.md ------------------------------------------------

@dataclass(frozen=True)
class Rule:
    package: str  # "resbench.train", or "run_bench.py"
    top: frozenset[str]  # importable at module level
    lazy: frozenset[str]  # importable inside functions (and under TYPE_CHECKING) as well


def _names(cell: str) -> frozenset[str]:
    """``errors, `torch` — never optuna`` → {"resbench.errors", "torch"}."""
    cell = re.sub(r"\(.*?\)", "", cell.split(" — ")[0]).strip()
    out = set()
    for item in cell.split(","):
        item = item.strip().strip("`").strip()
        if item in ("", "—", "stdlib only"):
            continue
        out.add(item if item in THIRD_PARTY or item == "resbench" else f"resbench.{item}")
    return frozenset(out)


THIRD_PARTY: set[str] = set()


def read_rules(text: str) -> list[Rule]:
    """The rows of the table under "Import rules" in the architecture document."""
    section = text[text.index("Import rules"):]
    rows = re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \|$", section, flags=re.M)
    assert rows, "no Import rules table found in docs/ARCHITECTURE.md"
    for _, top, lazy in rows:  # third-party names are the backticked ones
        THIRD_PARTY.update(n for n in re.findall(r"`([^`]+)`", top + lazy))
    return [Rule(package, _names(top), _names(lazy)) for package, top, lazy in rows]


RULES = read_rules(ARCHITECTURE.read_text(encoding="utf-8"))


def modules() -> dict[str, Path]:
    out = {"run_bench.py": REPO / "run_bench.py"}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def rule_for(module: str) -> Rule | None:
    if module in ("resbench", "run_bench.py"):
        return next(r for r in RULES if r.package == module)
    matches = [r for r in RULES if r.package != "resbench" and
               (module == r.package or module.startswith(r.package + "."))]
    return max(matches, key=lambda r: len(r.package), default=None)


def imports(source: str, module: str) -> list[tuple[int, str, bool]]:
    """``(line, imported module, lazy)`` for every import; lazy: inside a function or under
    ``if TYPE_CHECKING``. ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    tree = ast.parse(source)
    out = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import):
                out.extend((child.lineno, a.name, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module.split(".")[: len(module.split(".")) - child.level + 1]
                    base = ".".join([*package, *([base] if base else [])])
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    out.append((child.lineno, full if _is_module(full) else base, lazy))
            visit(child, inner)

    visit(tree, False)
    return out


def _is_module(name: str) -> bool:
    if not name.startswith("resbench."):
        return False
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def allowed(target: str, names: frozenset[str]) -> bool:
    return any(target == n or target.startswith(n + ".") if n != "resbench" else target == n
               for n in names)


def violations(module: str, source: str) -> list[str]:
    rule = rule_for(module)
    if rule is None:
        return [f"{module} has no row in the Import rules table of docs/ARCHITECTURE.md"]
    own = frozenset() if rule.package in ("resbench", "run_bench.py") else {rule.package}
    out = []
    for line, target, lazy in imports(source, module):
        top = target.split(".")[0]
        if top != "resbench" and (top in sys.stdlib_module_names or top == "__future__"):
            continue
        name = target if top == "resbench" else top
        if allowed(name, rule.top | own) or (lazy and allowed(name, rule.lazy)):
            continue
        where = "inside a function" if lazy else "at module level"
        hint = " (allowed only inside functions)" if allowed(name, rule.lazy) else ""
        out.append(f"{module}:{line} imports {name} {where}{hint}; the row "
                   f"`{rule.package}` allows {sorted(rule.top)} and, lazily, {sorted(rule.lazy)}")
    return out


def test_every_module_follows_the_import_rules_of_the_architecture_document():
    found = [v for module, path in modules().items()
             for v in violations(module, path.read_text(encoding="utf-8"))]
    assert not found, "\n".join(found)


def test_the_table_names_only_real_modules_and_packages():
    for rule in RULES:
        assert rule.package == "run_bench.py" or _is_module(rule.package) \
            or rule.package == "resbench", rule.package
        for name in rule.top | rule.lazy:
            if name.startswith("resbench.") or name == "resbench":
                assert name == "resbench" or _is_module(name), (rule.package, name)
            else:
                assert importlib.util.find_spec(name) is not None, (rule.package, name)


@pytest.mark.parametrize("module, source, problem", [
    ("resbench.spec.schema", "import torch\n", "imports torch at module level"),
    ("resbench.train.trial", "def f():\n    import optuna\n", "imports optuna inside a function"),
    ("resbench.train.loop", "from resbench.search import config\n",
     "imports resbench.search.config at module level"),
    ("resbench.report.tables", "from resbench.train.trial import run_trial\n",
     "imports resbench.train.trial"),
    ("resbench.store._load", "import torch\n", "imports torch"),
    ("resbench.report.figures", "import matplotlib\n",
     "imports matplotlib at module level (allowed only inside functions)"),
    ("resbench.newpackage", "import os\n", "has no row"),
])
def test_a_forbidden_edge_is_caught(module, source, problem):
    found = violations(module, source)
    assert len(found) == 1 and problem in found[0], found


@pytest.mark.parametrize("module, source", [
    ("resbench.report.figures", "def draw():\n    import matplotlib\n"),
    ("resbench.report", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n"),
    ("resbench.search.local", "from resbench.search.config import SearchConfig\n"),
    ("resbench.search.ray_runner", "def run():\n    from ray import tune\n"),
])
def test_allowed_edges_pass(module, source):
    assert violations(module, source) == []
