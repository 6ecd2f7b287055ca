"""bench/pseudonymise.py runs small: it prints every figure, the ratio against each
baseline measured in the same run, and a verdict per target (speed is not asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.pseudonymise import main, nhs_numbers
from sde.domain import nhs_number

# The DuckDB sha256() alternative and presidio-structured (a Presidio engine) are measured.
pytestmark = [pytest.mark.duckdb, pytest.mark.presidio]


def test_generated_numbers_are_distinct_and_valid() -> None:
    values = nhs_numbers(500, seed=3).to_pylist()
    assert len(set(values)) == 500
    assert all(nhs_number.is_valid(v) for v in values)


def test_runs_small_and_prints_figures_ratios_and_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = ["--distinct", "300", "--events", "2000", "--openssl-seconds", "1", "--repeat", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out

    def rate(label: str) -> float:
        found = re.search(re.escape(label) + r"\s+([\d,]+) /s\s+([\d,]+) /s per core", printed)
        assert found is not None, label
        return float(found.group(2).replace(",", ""))

    for label in (
        "sde: pseudonymise_array (Arrow)",
        "baseline: Python hmac.new loop",
        "alternative: DuckDB sha256() x2, threads=1",
        "sde: pseudonymise_distinct (Arrow)",
        "sde: pseudonymise_distinct, dictionary output",
        "sde: pid_array (+ normalise, Modulus 11)",
        "current: LinkagePseudonymiser.pids + map",
        "baseline: Python hmac.new loop per row",
    ):
        assert rate(label) > 0
    assert "== distinct identifiers: 300 normalised NHS numbers ==" in printed
    assert "== events: 2,000 rows, 200 patients, shuffled ==" in printed
    # presidio-structured is measured (its pseudonyms checked equal to the loop's).
    assert rate("baseline: presidio-structured, HMAC operator") > 0
    assert re.search(r"ceiling: OpenSSL HMAC-SHA256, 10-byte message\s+[\d,]+ /s per core", printed)
    ratios = dict(re.findall(r"^ratio (.+?)\s+([\d.]+)x$", printed, flags=re.MULTILINE))
    for name in (
        "sde / Python hmac.new loop",
        "sde / OpenSSL ceiling",
        "sde / DuckDB sha256() x2, threads=1",
        "sde / presidio-structured",
        "sde / presidio-structured per row",
        "sde / Python hmac.new loop per row",
        "sde / current per-value path (pids)",
        "dictionary output / Python hmac.new loop per row",
    ):
        assert float(ratios[name]) > 0, name
    targets = re.findall(r"^target (.+) >= ([\d,]+)/s per core: (met|NOT met)", printed, re.M)
    assert [(name, goal) for name, goal, _ in targets] == [
        ("distinct identifiers", "1,500,000"),
        ("event rows", "5,000,000"),
        ("event rows, dictionary output", "5,000,000"),
        ("event rows, pid_array with validation", "5,000,000"),
    ]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["distinct"] == 300
    assert figures["events"] == 2000
    assert isinstance(figures["distinct_target_met"], bool)
    assert figures["openssl_per_core"] > 0
    assert figures["presidio"]["values"] == 300
    assert figures["presidio"]["per_core"] > 0


def test_refuses_sizes_below_one() -> None:
    with pytest.raises(SystemExit):
        main(["--distinct", "0"])
