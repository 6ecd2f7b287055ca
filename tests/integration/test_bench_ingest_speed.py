"""bench/ingest_speed.py runs small in both modes: it prints every figure, the ratios
against the baselines measured in the same run, and a verdict per target (speed is not
asserted)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.ingest_speed import main, write_events
from sde.adapters.csv_arrow import python_records

pytestmark = pytest.mark.delta


def test_generated_events_are_valid_csv_with_the_bad_rows_counted(tmp_path: Path) -> None:
    path = tmp_path / "gp_events.csv"
    counts = write_events(path, 5000, chunk=2000)
    records = list(python_records(path))
    assert records[0] == ["nhs_number", "event_date", "snomed_code", "term", "value", "unit"]
    assert len(records) - 1 == counts["rows"] == 5003
    assert counts["malformed_row"] == 3
    assert sum(len(r) != 6 for r in records[1:]) == 3
    assert all(counts[k] > 0 for k in ("invalid_nhs_number", "bad_date", "missing_required"))


def test_events_mode_prints_figures_ratios_and_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    assert main(["--events", "3000", "--json", str(out), "--tmp", str(tmp_path)]) == 0
    printed = capsys.readouterr().out

    def rate(label: str) -> float:
        found = re.search(re.escape(label) + r"\s+([\d,]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+ GB", printed)
        assert found is not None, label
        return float(found.group(1).replace(",", ""))

    for label in (
        "floor: pyarrow.csv reader (strings)",
        "sde ingest (CSV -> Delta)",
        "baseline: row-wise engine",
    ):
        assert rate(label) > 0
    assert re.search(r"sde ingest is [\d.]+ of the reader's rate, [\d.]+x the row-wise", printed)
    assert re.search(r"target: at least 500,000 rows/s end to end: (met|NOT met)", printed)
    assert re.search(r"target: peak memory under 4.00 GB: (met|NOT met) \([\d.]+ GB\)", printed)
    figures = json.loads(out.read_text())
    assert figures["events"] == 3000
    runs = figures["runs"]
    assert runs["batch"]["rows"] == runs["rowwise"]["rows"] == 3001
    assert runs["batch"]["quarantined_by_reason"] == runs["rowwise"]["quarantined_by_reason"]
    assert runs["batch"]["peak_rss_bytes"] > 0


@pytest.mark.presidio
def test_datasets_mode_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["40"]) == 0
    printed = capsys.readouterr().out
    assert "synthesised 40 patients" in printed
    assert re.search(r"gp_events\s+[\d,]+\s+[\d,]+\s+[\d,]+\s+[\d.]+", printed)


@pytest.mark.spark
def test_events_mode_on_spark_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--spark: a child process with its own Spark ingests the same file; its rate against
    the local engine's is printed and its counts are checked equal to the local engine's."""
    out = tmp_path / "figures.json"
    args = ["--events", "3000", "--no-rowwise", "--spark", "--tmp", str(tmp_path)]
    assert main([*args, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    found = re.search(
        r"sde ingest on Spark local\[2\]\s+([\d,]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+ GB", printed
    )
    assert found is not None
    assert float(found.group(1).replace(",", "")) > 0
    assert re.search(r"sde ingest on Spark is [\d.]+x the local engine \(after [\d.]+ s", printed)
    assert "counts: the local and Spark engines agree" in printed
    runs = json.loads(out.read_text())["runs"]
    assert runs["spark"]["quarantined_by_reason"] == runs["batch"]["quarantined_by_reason"]
    assert runs["spark"]["rows_written"] == runs["batch"]["rows_written"] > 0
    assert runs["spark"]["peak_rss_bytes"] > runs["batch"]["peak_rss_bytes"]  # the JVM's
