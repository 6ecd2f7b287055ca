"""bench/extract_speed.py runs small: it prints both figures, the ratio against the floor
measured in the same run, peak memory, and checks that counts reconcile (speed is not
asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.extract_speed import main

pytestmark = pytest.mark.delta


def test_runs_small_and_prints_figures_ratio_and_memory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    assert main(["--events", "20000", "--per-patient", "10", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "== extract: 20,000 events, 2,000 patients ==" in printed
    sde = re.search(r"sde: build_extract\s+([\d,]+) rows/s", printed)
    floor = re.search(r"floor: Delta read \+ write\s+([\d,]+) rows/s", printed)
    ratio = re.search(r"ratio sde / floor\s+([\d.]+)x", printed)
    assert sde is not None
    assert floor is not None
    assert ratio is not None
    rates = [float(m.group(1).replace(",", "")) for m in (sde, floor)]
    assert all(rate > 0 for rate in rates)
    # The ratio is printed to two decimals: within half its last digit of the printed rates'.
    assert float(ratio.group(1)) == pytest.approx(rates[0] / rates[1], abs=0.006)
    figures = json.loads(out.read_text())
    # About 3% of patients on the national register and 1.5% on type 1: some rows removed,
    # and written + removed is every row of the source.
    assert 0 < figures["rows_removed"] < 20_000 * 0.1
    assert figures["rows_written"] + figures["rows_removed"] == 20_000
    assert f"removed by opt-outs {figures['rows_removed']:,} (reconciled)" in printed
    assert figures["peak_rss_mb"] > 0
    assert re.search(r"peak memory of the extract process: [\d,]+ MB", printed)


@pytest.mark.spark
def test_runs_small_on_spark_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--spark: a child process with its own Spark builds the same extract; its rate, the
    ratio against the local engine's and its memory are printed, counts checked equal."""
    out = tmp_path / "figures.json"
    args = ["--events", "5000", "--spark", "--spark-cores", "1", "--spark-memory", "1g"]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    local = re.search(r"sde: build_extract\s+([\d,]+) rows/s", printed)
    spark = re.search(r"spark: build_extract_spark\s+([\d,]+) rows/s .* on local\[1\]", printed)
    ratio = re.search(r"ratio spark / sde\s+([\d.]+)x", printed)
    assert local is not None
    assert spark is not None
    assert ratio is not None
    rates = [float(m.group(1).replace(",", "")) for m in (spark, local)]
    assert float(ratio.group(1)) == pytest.approx(rates[0] / rates[1], abs=0.01, rel=0.05)
    figures = json.loads(out.read_text())
    assert figures["spark"]["rows_written"] == figures["rows_written"] > 0
    assert figures["spark"]["peak_rss_mb"] > figures["peak_rss_mb"]  # Spark's JVM counted
    assert "same counts as the local engine" in printed
