"""``resbench sample``: uniform draws from a space, kept inside a complexity band, written as a
suite (or trained at once), with the band in the suite, the manifest and the report."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from resbench.cli import main
from resbench.compile import cost
from resbench.errors import UserError
from resbench.search.population import Band, parse_count, sample_population, write_suite
from resbench.spec import load_spec
from resbench.spec.space import UniformSampler, load_space
from resbench.train.suite import load_suite

from .conftest import tiny_space

LIBRARY_SPACE = Path(__file__).resolve().parents[2] / "specs" / "spaces" / "cifar_resnets.yaml"


@pytest.mark.parametrize("text, value", [("20M", 20_000_000), ("1.5G", 1_500_000_000),
                                         ("300k", 300_000), ("2e7", 20_000_000), ("40000", 40_000)])
def test_counts_read_suffixes(text, value):
    assert parse_count(text, flag="--macs") == value


@pytest.mark.parametrize("text, words", [
    ("20M:10M", ["--macs", "empty", "20,000,000", "10,000,000", "LO <= HI"]),
    ("abc", ["--macs", "'abc'", "LO:HI"]),
    ("20M", ["--macs", "LO:HI"]),
    ("20M:abc", ["--macs", "'abc'", "suffix k, M or G"]),
    ("20M:40M:60M", ["LO:HI"]),
])
def test_bad_bands_are_user_errors(text, words):
    with pytest.raises(UserError) as info:
        Band.parse(text, flag="--macs")
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize("argv, words", [
    (["--macs", "20M:10M", "--out", "x"], ["error: --macs", "empty"]),
    (["--macs", "abc", "--out", "x"], ["error: --macs: 'abc' is not a band"]),
    (["--out", "x"], ["error: give a band"]),
    (["--macs", "20M:40M"], ["error: say where", "--out", "--run"]),
    (["--macs", "20M:40M", "--n", "0", "--out", "x"], ["error: --n must be at least 1"]),
])
def test_the_command_refuses_bad_flags_without_a_traceback(argv, words, capsys, tmp_path):
    assert main(["sample", str(LIBRARY_SPACE), *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def test_the_uniform_sampler_draws_every_value_evenly():
    sampler = UniformSampler(0)
    draws = [sampler.int("d", 1, 12, 1, False) for _ in range(12_000)]
    counts = collections.Counter(draws)
    assert sorted(counts) == list(range(1, 13))
    assert all(800 < c < 1200 for c in counts.values()), counts  # 1000 expected each
    stepped = {sampler.int("w", 16, 128, 8, False) for _ in range(2000)}
    assert stepped == set(range(16, 129, 8))
    logs = [sampler.int("w", 8, 512, 1, True) for _ in range(4000)]
    assert min(logs) >= 8 and max(logs) <= 512
    assert 0.4 < sum(v <= 64 for v in logs) / len(logs) < 0.6  # 64 is the log-midpoint
    choices = collections.Counter(sampler.choice("b", ["a", "b", "c"]) for _ in range(3000))
    assert all(900 < c < 1100 for c in choices.values())
    floats = [sampler.float("lr", 0.1, 0.5, 0.1, False) for _ in range(500)]
    assert {round(f, 9) for f in floats} == {0.1, 0.2, 0.3, 0.4, 0.5}
    same = [UniformSampler(3).int("d", 1, 100, 1, False) for _ in range(2)]
    assert same[0] == same[1]


def test_a_population_lies_in_the_band_and_is_reproducible():
    space = load_space(LIBRARY_SPACE)
    band = Band.parse("20M:40M", flag="--macs")
    pop = sample_population(space, 15, macs=band, seed=0)
    assert len(pop.members) == 15
    assert pop.drawn == 15 + pop.outside + pop.duplicates and pop.outside > 0
    assert len({m.spec.key() for m in pop.members}) == 15
    for member in pop.members:
        assert 20_000_000 <= cost(member.spec).macs <= 40_000_000
        assert member.cost["macs"] == cost(member.spec).macs
    again = sample_population(space, 15, macs=band, seed=0)
    assert [m.spec.key() for m in again.members] == [m.spec.key() for m in pop.members]
    other = sample_population(space, 15, macs=band, seed=1)
    assert [m.spec.key() for m in other.members] != [m.spec.key() for m in pop.members]


def test_both_bands_apply_and_an_impossible_band_says_what_was_seen():
    space = load_space(LIBRARY_SPACE)
    pop = sample_population(space, 5, macs=Band(20_000_000, 60_000_000),
                            params=Band(0, 200_000), seed=0)
    assert all(m.cost["params"] <= 200_000 and 20e6 <= m.cost["macs"] <= 60e6
               for m in pop.members)
    with pytest.raises(UserError) as info:
        sample_population(space, 5, macs=Band(1_000, 2_000), seed=0, max_draws=50)
    message = str(info.value)
    assert "after 50 draws" in message and "macs" in message and "M to " in message


def test_the_suite_holds_the_population_and_loads(tmp_path):
    space = load_space(LIBRARY_SPACE)
    pop = sample_population(space, 4, macs=Band(20_000_000, 40_000_000), seed=0)
    suite_file = write_suite(pop, tmp_path / "pop")
    suite = load_suite(suite_file)
    assert [e.spec.key() for e in suite.entries] == [m.spec.key() for m in pop.members]
    assert suite.population["macs"] == [20_000_000, 40_000_000]
    assert suite.population["drawn"] == pop.drawn and suite.population["kept"] == 4
    first = load_spec(tmp_path / "pop" / "specs" / "cifar_resnets-0000.yaml")
    assert first.recipe["data"] == {"name": "digits", "image_size": 32}
    assert write_suite(pop, tmp_path / "pop") == suite_file  # the same suite again: kept
    other = sample_population(space, 4, macs=Band(20_000_000, 40_000_000), seed=1)
    with pytest.raises(UserError, match="already holds another suite"):
        write_suite(other, tmp_path / "pop")


def test_sample_run_trains_the_population_and_the_report_names_the_band(
        tmp_path, write_space, capsys):
    from resbench.report import make_report

    space = write_space(tiny_space(name="tinyband", input_size=8, recipe={"epochs": 1}))
    results = tmp_path / "results"
    code = main(["sample", str(space), "--n", "3", "--macs", "10k:200k", "--seed", "0",
                 "--run", "--results", str(results), "--progress", "none"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "kept 3 of the 3" in out and "3 trial(s) run" in out
    folder = results / "tinyband-macs10k-200k"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["population"]["macs"] == [10_000, 200_000]
    assert (folder / "population" / "suite.yaml").is_file()
    records = [json.loads(p.read_text()) for p in (folder / "trials").glob("*.json")]
    assert len(records) == 3
    assert all(10_000 <= r["metrics"]["macs"] <= 200_000 for r in records)
    report = make_report([folder], tmp_path / "report")
    text = report.markdown.read_text()
    edf = text.split("## Design-space error distributions")[1].split("\n## ")[0]
    assert "3 models drawn uniformly from space.yaml" in edf
    assert "MACs in [10,000, 200,000]" in edf
    # A rerun finds the same suite and trains nothing again.
    assert main(["sample", str(space), "--n", "3", "--macs", "10k:200k", "--seed", "0",
                 "--run", "--results", str(results), "--progress", "none"]) == 0
    assert "0 trial(s) run, 3 already finished" in capsys.readouterr().out

