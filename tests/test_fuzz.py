"""Fuzz test: hostile files and flags through the real CLI (validate, show, bench, search,
report), in subprocesses under an address-space limit and a timeout. Every case ends in success
(exit 0) or in ``error: ...`` with exit 2: never a traceback, a hang or a memory blow-up.

Hypothesis draws the cases (hostile structures, sizes, encodings and paths, on top of a fixed
corpus of the inputs that once broke); they run in batches, one subprocess per batch
(``tests/fuzz_worker.py``), since each process pays for importing torch."""
from __future__ import annotations

import base64
import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO

ADDRESS_SPACE = 6 * 2**30  # importing torch maps about 3.5 GiB; a blow-up passes this quickly
BATCH_TIMEOUT_S = 300
CASE_SECONDS = 90  # a valid drawn recipe may train (up to 70 epochs of 16 images)
WORKERS = 2

SPEC = {"stem": "cifar", "num_classes": 10, "shortcut": "zero_pad",
        "stages": [{"depth": 1, "width": 16}, {"depth": 1, "width": 32, "stride": 2}],
        "recipe": {"epochs": 1, "batch_size": 8, "latency_batch": 2,
                   "data": {"name": "digits", "limit": 16}}}
SPEC_TEXT = json.dumps(SPEC)
BENCH = ["--results", "res", "--progress", "none", "--threads", "1"]
SEARCH = ["--results", "res", "--trials", "1", "--quiet"]


def spec_with(**fields) -> str:
    return json.dumps({**SPEC, **fields})


def bomb(levels: int) -> str:
    text = 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for i in range(1, levels):
        text += f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n"
    return text + f"stem: cifar\nstages: [{{depth: 1, width: 8}}]\nname: *a{levels - 1}\n"


def nested(depth: int, json_form: bool) -> str:
    return ('{"a": ' + "[" * depth + "]" * depth + "}") if json_form else \
        ("a: " + "[" * depth + "]" * depth + "\n")


def case(argv, files=None, fifos=()):
    return {"argv": list(argv), "files": files or {}, "fifos": list(fifos)}


CORPUS = [
    # the inputs issue 9 lists, one each
    case(["validate", "s.yaml"], {"s.yaml": nested(1500, False)}),
    case(["show", "s.json"], {"s.json": nested(1500, True)}),
    case(["validate", "c0.yaml"], {f"c{i}.yaml": f"_base_: c{i + 1}.yaml\n" for i in range(1500)}),
    case(["show", "s.yaml"], {"s.yaml": "num_classes: " + "7" * 5000 + "\n"}),
    case(["validate", "s.json"], {"s.json": json.dumps({"_base_": "a\0b.yaml"})}),
    case(["validate", "s.json"], {"s.json": json.dumps({"_base_": "b" * 400 + ".yaml"})}),
    case(["bench", "suite.yaml", *BENCH], {"suite.yaml": json.dumps({"specs": ["a\0.yaml"]})}),
    case(["bench", "suite.yaml", *BENCH], {"suite.yaml": json.dumps({"specs": ["x" * 300]})}),
    case(["bench", "s.json", *BENCH, "--experiment", "e" * 300], {"s.json": SPEC_TEXT}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(name="n" * 300)}),
    case(["show", "s.json"], {"s.json": SPEC_TEXT.replace('"cifar"', '"\\ud800"')}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(name="\\ud800".encode().decode(
        "unicode_escape"))}),
    case(["validate", "fifo.yaml"], fifos=["fifo.yaml"]),
    case(["show", "zero.yaml"], {"zero.yaml": "_base_: /dev/zero\n"}),
    case(["validate", "big.yaml"], {"big.yaml": "# " + "x" * (3 << 20) + "\n"}),
    case(["validate", "bomb.yaml"], {"bomb.yaml": bomb(10)}),
    case(["show", "bomb.yaml"], {"bomb.yaml": bomb(5)}),
    case(["search", "s.json", *SEARCH, "--sampler-seed", str(2**40)], {"s.json": SPEC_TEXT}),
    case(["search", "s.json", *SEARCH, "--storage", "notaurl"], {"s.json": SPEC_TEXT}),
    case(["search", "s.json", *SEARCH, "--storage", "sqlite:////nonexistent/x.db"],
         {"s.json": SPEC_TEXT}),
    case(["bench", "s.json", "--results", "f", "--progress", "none"], {"s.json": SPEC_TEXT,
                                                                       "f": "a file"}),
    case(["bench", "s.json", "--results", "/proc", "--progress", "none"], {"s.json": SPEC_TEXT}),
    case(["bench", "s.json", *BENCH[:-1], "100000"], {"s.json": SPEC_TEXT}),
    case(["search", "s.yaml", *SEARCH], {"s.yaml": spec_with(
        recipe={**SPEC["recipe"], "optimizer": {"lr": {"$float": [0.1, 1.0], "step": float("nan")}}})
        .replace("NaN", ".nan")}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(recipe={
        **SPEC["recipe"], "data": {"name": "synthetic", "options": {"count": "x"}}})}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(recipe={**SPEC["recipe"],
                                                                  "seeds": [2**70]})}),
    case(["show", "s.json"], {"s.json": spec_with(stem={"kind": "deep", "width": 33})}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(stem={"kind": "deep", "width": 33})}),
    case(["show", "s.json"], {"s.json": spec_with(stages=[{"depth": 1, "width": 10**12}])}),
    case(["show", "s.json"], {"s.json": spec_with(block="bottleneck", width_per_group=10**18)}),
    case(["show", "s.json"], {"s.json": spec_with(stages=[{"depth": 10**6, "width": 16}])}),
    case(["show", "s.json"], {"s.json": spec_with(stages=[{"depth": 1, "width": 1_000_000}])}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(stages=[{"depth": 1, "width": 1_000_000}])}),
    case(["search", "s.json", *SEARCH], {"s.json": spec_with(
        stages=[{"depth": {"$int": [1, 10**9]}, "width": 8}])}),
    case(["validate", "s.yaml"], {"s.yaml": "stem: cifar\nstem: deep\nstages: [{depth: 1, width: 8}]\n"}),
    case(["validate", "s.json"], {"s.json": spec_with(stages=[{"depth": True, "width": 8}])}),
    case(["validate", "c.json", "b.json"], {"b.json": SPEC_TEXT, "c.json": json.dumps(
        {"_base_": "b.json", "stages": {"1.0": {"depth": 2}}})}),
    case(["validate", "c.json"], {"b.json": SPEC_TEXT, "c.json": json.dumps(
        {"_base_": "b.json", "stages": {"true": {"depth": 2}}})}),
    case(["search", "s.json", *SEARCH, "--experiment", ""], {"s.json": SPEC_TEXT}),
    case(["search", "s.json", *SEARCH, "--objective", ""], {"s.json": SPEC_TEXT}),
    case(["bench", "s.json", "--results", "", "--progress", "none"], {"s.json": SPEC_TEXT}),
    case(["validate", "."], {"notes.txt": ""}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(recipe={
        **SPEC["recipe"], "data": {"name": "imagefolder", "root": "/etc"}})}),
    case(["validate", "s.yaml"], {"s.yaml": "stem: cifar\nstagez: [{depth: 1, width: 8}]\n"}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(recipe={
        **SPEC["recipe"], "transfer": {"init": "a\0b.pt"}})}),
    case(["bench", "s.json", *BENCH], {"s.json": spec_with(recipe={
        **SPEC["recipe"], "transfer": {"init": "fifo.pt"}})}, fifos=["fifo.pt"]),
    case(["report", "nothing", "-o", "out"]),
    case(["report", "f", "-o", "out"], {"f": "x"}),
    # and the ordinary path, which must still work
    case(["validate", "s.json"], {"s.json": SPEC_TEXT}),
    case(["show", "s.json"], {"s.json": SPEC_TEXT}),
    case(["bench", "s.json", *BENCH], {"s.json": SPEC_TEXT}),
]

# ----- hypothesis: hostile structures, sizes, encodings, paths --------------------------------

texts = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=3),
    st.sampled_from(["", "\0", "../../../etc/passwd", "/dev/zero", "/proc/self/mem", "x" * 5000,
                     "cifar", "bottleneck", "zero_pad", "$int", "<script>", "*", "**/*.yaml"]),
)
numbers = st.one_of(
    st.integers(-3, 70), st.integers(-2**80, 2**80), st.sampled_from([0, 1, 2**31, 2**32, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none())
scalars = st.one_of(texts, numbers)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(["depth", "width", "stride", "kind", "$int",
                                                "$choice", "_base_", "0", "1"]), texts),
                    inner, max_size=4)), max_leaves=12)
FIELDS = ["_base_", "name", "num_classes", "input_channels", "input_size", "stem", "block",
          "shortcut", "groups", "width_per_group", "expansion", "se_ratio", "stages", "head",
          "recipe", "search", "stagez"]
STAGE_FIELDS = ["depth", "width", "stride", "block", "shortcut", "groups", "width_per_group"]
RECIPE_FIELDS = ["epochs", "seeds", "batch_size", "data", "optimizer", "device", "transfer"]


def dumps(data) -> str:
    """JSON, which YAML also reads; lone surrogates become ``\\udxxx`` escapes in both."""
    return json.dumps(data, allow_nan=True)


@st.composite
def mutated_spec(draw) -> str:
    spec = json.loads(SPEC_TEXT)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "stage", "recipe"]))
        if where == "top":
            spec[draw(st.sampled_from(FIELDS))] = draw(values)
        elif where == "stage" and isinstance(spec.get("stages"), list) and spec["stages"] \
                and isinstance(spec["stages"][-1], dict):
            spec["stages"][-1][draw(st.sampled_from(STAGE_FIELDS))] = draw(values)
        elif isinstance(spec.get("recipe"), dict):
            spec["recipe"][draw(st.sampled_from(RECIPE_FIELDS))] = draw(values)
    return dumps(spec)


@st.composite
def hostile_text(draw) -> str | dict:
    kind = draw(st.sampled_from(["nested", "bomb", "int", "dup", "bytes", "bom", "anchor-loop",
                                 "tag", "mutant", "mutant", "mutant", "random"]))
    if kind == "nested":
        return nested(draw(st.integers(1, 5000)), draw(st.booleans()))
    if kind == "bomb":
        return bomb(draw(st.integers(1, 12)))
    if kind == "int":
        return SPEC_TEXT[:-1] + f', "num_classes": {"9" * draw(st.integers(1, 9000))}}}'
    if kind == "dup":
        return "stem: cifar\n" * draw(st.integers(1, 3)) + "stages: [{depth: 1, width: 8}]\n"
    if kind == "bytes":
        return {"b64": base64.b64encode(draw(st.binary(max_size=300))).decode()}
    if kind == "bom":
        return "\ufeff" + SPEC_TEXT
    if kind == "anchor-loop":
        return "a: &a [*a]\n" if draw(st.booleans()) else "a: &a {b: [*a]}\n"
    if kind == "tag":
        return draw(st.sampled_from(["!!python/object/apply:os.system [echo x]\n",
                                     "a: !!binary AAAA\n", "a: !!set {x, y}\n", "a: !!timestamp x\n",
                                     "name: 2001-02-30\n", "? [a, b]\n: 1\n"]))
    if kind == "mutant":
        return draw(mutated_spec())
    return dumps(draw(values))


@st.composite
def fuzz_cases(draw) -> dict:
    suffix = draw(st.sampled_from([".yaml", ".json", ".yml"]))
    content = draw(hostile_text())
    name = "s" + suffix
    command = draw(st.sampled_from(["validate", "show", "bench", "search", "suite"]))
    files = {name: content}
    if command == "suite":  # a suite whose specs: entries are hostile paths
        entries = draw(st.lists(st.one_of(texts, st.just(name)), min_size=1, max_size=3))
        files["suite.yaml"] = dumps({"specs": entries})
        return case(["bench", "suite.yaml", *BENCH], files)
    flags: list[str] = []
    if command in ("bench", "search") and draw(st.booleans()):
        flag = draw(st.sampled_from(["--experiment", "--results", "--threads", "--seeds",
                                     "--sampler-seed", "--storage", "--seed", "--trials"]))
        value = draw(st.one_of(texts, numbers.map(str)))
        flags = [f"{flag}={value}"]
        if command == "bench" and flag in ("--sampler-seed", "--storage", "--seed", "--trials"):
            command = "search"
        if command == "search" and flag == "--seeds":
            command = "bench"
    argv = {"validate": ["validate", name], "show": ["show", name],
            "bench": ["bench", name, *BENCH], "search": ["search", name, *SEARCH]}[command]
    if draw(st.booleans()) and command in ("validate", "show"):
        files["base" + suffix] = SPEC_TEXT
        files[name] = dumps({"_base_": draw(st.one_of(texts, st.just("base" + suffix)))})
    return case([*argv, *flags], files)


def drawn_cases(count: int) -> list[dict]:
    out: list[dict] = []

    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fuzz_cases())
    def collect(c):
        out.append(c)

    collect()
    return out[:count]


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_batches(cases: list[dict], tmp_path: Path) -> list[tuple[dict, dict]]:
    """Run the cases in WORKERS subprocesses at once; (case, outcome) for each."""
    procs = []
    for w in range(WORKERS):
        batch = cases[w::WORKERS]
        (tmp_path / f"cases{w}.json").write_text(json.dumps(batch))
        log = tmp_path / f"log{w}.jsonl"
        procs.append((batch, log, subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "fuzz_worker.py"), str(tmp_path / f"cases{w}.json"),
             str(log)], cwd=tmp_path, preexec_fn=limit_memory, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                                         "PYTHONPATH": str(REPO), "HOME": str(tmp_path)})))
    results = []
    for batch, log, proc in procs:
        try:
            _, stderr = proc.communicate(timeout=BATCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        done = {r["case"]: r for r in lines if "case" in r}
        for i, c in enumerate(batch):
            outcome = done.get(i) or {"code": f"never finished (worker exit {proc.returncode}: "
                                              f"{stderr.decode(errors='replace')[-500:]})"}
            results.append((c, outcome))
            if i not in done:
                break  # the worker died or hung on this case; later ones did not run
    return results


def problems(results: list[tuple[dict, dict]]) -> list[str]:
    bad = []
    for c, r in results:
        code, err = r.get("code"), r.get("stderr", "")
        ok = (code in (0, None) and "Traceback" not in err) or \
            (code == 2 and err.startswith("error: ") and "Traceback" not in err)
        if not ok or r.get("seconds", 0) > CASE_SECONDS:
            files = {k: (v if isinstance(v, dict) else v[:200]) for k, v in c["files"].items()}
            bad.append(f"{c['argv']} files={list(files)[:3]} -> exit {code}, "
                       f"{r.get('seconds')}s: {err[-600:]}")
    return bad


@pytest.mark.slow
def test_hostile_inputs_end_in_success_or_one_error_line(tmp_path):
    cases = CORPUS + drawn_cases(40)
    results = run_batches(cases, tmp_path)
    assert len(results) == len(cases), "\n".join(problems(results))
    assert not problems(results), "\n".join(problems(results))
    finished = [r for _, r in results]
    assert sum(r["code"] == 2 for r in finished) > len(CORPUS) // 2  # they are mostly refused
    assert sum(r["code"] in (0, None) for r in finished) >= 3  # and good input still works
