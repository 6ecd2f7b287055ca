"""bench/query_engines.py runs small: the same researcher query on DuckDB (sde's locked
connection) and on Spark local gives the same result, and every figure is printed (speed
is not asserted). Uses the test run's one Spark session (tests/spark_session.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest

from bench.query_engines import JARS_DIR, event_batches, main, patient_ids, run, same_result
from tests.spark_session import spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.delta, pytest.mark.duckdb]


def test_runs_small_and_both_engines_agree(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = run(
        events=20_000,
        seed=3,
        repeat=1,
        cores=2,
        memory="1g",
        jars_dir=JARS_DIR,
        folder=tmp_path,
        session=spark,
    )
    printed = capsys.readouterr().out

    assert "== a researcher's query on an extract: 20,000 events, 2,000 patients, 2 cores ==" in (
        printed
    )
    assert re.search(
        r"^DuckDB \(sde's locked connection, threads=2\)\s+first\s+[\d.]+ s", printed, re.M
    )
    assert re.search(r"^Spark local\[2\] \(delta-spark\)\s+first\s+[\d.]+ s", printed, re.M)
    assert re.search(r"^ratio Spark / DuckDB \(median\)\s+[\d.]+x$", printed, re.M)
    assert "results equal: yes" in printed
    assert figures["results_equal"] is True
    assert figures["result_rows"] > 100  # codes x years x sexes actually grouped
    assert figures["spark_session_start_seconds"] is None  # the session was given
    assert len(figures["duckdb_seconds"]) == len(figures["spark_seconds"]) == 1


def test_same_result_notices_a_different_count_or_mean() -> None:
    base = pa.table(
        {
            "code": ["C000", "C001"],
            "event_year": [2020, 2021],
            "sex": ["F", "M"],
            "events": [10, 3],
            "patients": [4, 2],
            "mean_value": [50.5, None],
        }
    )
    reordered = base.take([1, 0]).cast(base.schema.set(3, pa.field("events", pa.int32())))
    assert same_result(base, reordered)
    assert not same_result(base, base.set_column(4, "patients", pa.array([4, 3])))
    assert not same_result(base, base.set_column(5, "mean_value", pa.array([50.6, None])))
    assert not same_result(base, base.set_column(5, "mean_value", pa.array([50.5, 1.0])))
    assert not same_result(base, base.slice(0, 1))


def test_generated_extract_has_the_asked_shape() -> None:
    ids = patient_ids(50, seed=1)
    assert len(set(ids.to_pylist())) == 50
    assert all(len(value) == 32 for value in ids.to_pylist())
    batches = list(event_batches(ids, 1234, seed=1))
    assert sum(batch.num_rows for batch in batches) == 1234
    assert set(batches[0].column("patient_id").to_pylist()) <= set(ids.to_pylist())
    assert batches[0].schema.names == ["patient_id", "code", "event_date", "value"]


def test_refuses_sizes_below_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--events", "0"])
    assert exited.value.code == 2  # argparse's usage error
    assert "--events" in capsys.readouterr().err
