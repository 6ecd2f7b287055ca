"""Benchmark: a researcher's query on an extract, DuckDB against Spark local, same data.

Builds a project extract as two Delta tables with delta-rs (``sde.adapters.delta``): an
events table of N rows (``--events``, default 10,000,000) and its patients table (one
patient per ten events), both keyed by ``patient_id`` as extracts are. Then runs the same
SQL on each engine:

- DuckDB through sde's researcher connection (``sde.adapters.duckdb.locked_connection``:
  the tables registered as Arrow datasets, external access off, configuration locked);
- Apache Spark in local mode (``sde.adapters.spark.spark_session``, ``local[cores]``),
  reading the same tables with delta-spark.

The query counts events and distinct patients per code, year and sex, with the mean of a
value, over a join to the patients table with a filter on year of birth. Each engine runs
it ``--repeat`` times; the first (cold) and the median are printed, with the ratio and
whether both engines gave the same result (counts exactly, means to 1e-9). Spark's session
start is printed apart from its query time. Exit status 1 if the results differ.

    .venv/bin/python bench/query_engines.py                 # 10,000,000 events
    .venv/bin/python bench/query_engines.py --events 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from sde.adapters import delta
from sde.adapters.duckdb import locked_connection

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parent.parent
JARS_DIR = ROOT / ".build" / "spark-jars"
CHUNK = 1_000_000  # event rows generated and written at a time
CODES = 60
FIRST_DAY = dt.date(2015, 1, 1).toordinal() - dt.date(1970, 1, 1).toordinal()
DAYS = 10 * 365

QUERY = """
SELECT e.code,
       year(e.event_date) AS event_year,
       p.sex,
       count(*) AS events,
       count(DISTINCT e.patient_id) AS patients,
       avg(e.value) AS mean_value
FROM events AS e
JOIN patients AS p ON e.patient_id = p.patient_id
WHERE p.birth_year BETWEEN 1940 AND 1990
GROUP BY e.code, year(e.event_date), p.sex
"""
KEYS = ("code", "event_year", "sex")


def patient_ids(count: int, seed: int) -> pa.Array:
    """``count`` distinct 32-character hex identifiers, as project pseudonyms look."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 2**63 - 1, size=(count, 2), dtype=np.int64)
    return pa.array([f"{a:016x}{b:016x}" for a, b in raw.tolist()], pa.string())


def patients_table(ids: pa.Array, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed + 1)
    count = len(ids)
    return pa.table(
        {
            "patient_id": ids,
            "birth_year": pa.array(rng.integers(1920, 2020, size=count), pa.int32()),
            "sex": pa.array(
                np.array(["F", "M", "U"])[rng.choice(3, size=count, p=[0.5, 0.49, 0.01])]
            ),
        }
    )


def event_batches(ids: pa.Array, rows: int, seed: int) -> Iterator[pa.RecordBatch]:
    """``rows`` events over ``ids`` in chunks: a code, a date in 2015-2024, a value (null
    for one in twenty)."""
    rng = np.random.default_rng(seed + 2)
    codes = np.array([f"C{n:03d}" for n in range(CODES)])
    for start in range(0, rows, CHUNK):
        size = min(CHUNK, rows - start)
        days = rng.integers(0, DAYS, size=size, dtype=np.int32) + FIRST_DAY
        values = rng.normal(50.0, 15.0, size=size)
        yield pa.record_batch(
            {
                "patient_id": ids.take(pa.array(rng.integers(0, len(ids), size=size))),
                # Skewed like clinical codes: a few common, many rare.
                "code": pa.array(codes[np.minimum(rng.zipf(1.3, size=size) - 1, CODES - 1)]),
                "event_date": pa.array(days, pa.int32()).cast(pa.date32()),
                "value": pa.array(values, mask=rng.random(size) < 0.05),
            }
        )


def build(folder: Path, events: int, seed: int) -> dict[str, Path]:
    ids = patient_ids(max(events // 10, 1), seed)
    tables = {"patients": folder / "patients", "events": folder / "events"}
    delta.append(tables["patients"], patients_table(ids, seed))
    batches = event_batches(ids, events, seed)
    first = next(batches)
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], batches))
    delta.append(tables["events"], reader)
    return tables


def timed(run: Callable[[], pa.Table], repeat: int) -> tuple[list[float], pa.Table]:
    seconds: list[float] = []
    result = pa.table({})
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - began)
    return seconds, result


def canonical(table: pa.Table) -> list[dict[str, Any]]:
    """Rows sorted by the group keys, with the engines' integer widths made equal."""
    rows = table.select([*KEYS, "events", "patients", "mean_value"]).to_pylist()
    return sorted(rows, key=lambda row: tuple(row[key] for key in KEYS))


def same_result(left: pa.Table, right: pa.Table) -> bool:
    a, b = canonical(left), canonical(right)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if any(x[name] != y[name] for name in (*KEYS, "events", "patients")):
            return False
        if (x["mean_value"] is None) != (y["mean_value"] is None):
            return False
        if x["mean_value"] is not None and not math.isclose(
            x["mean_value"], y["mean_value"], rel_tol=1e-9
        ):
            return False
    return True


def run_duckdb(tables: dict[str, Path], cores: int, repeat: int) -> tuple[list[float], pa.Table]:
    con = locked_connection(tables, threads=cores, memory_limit="4GB")
    try:
        return timed(lambda: con.sql(QUERY).to_arrow_table(), repeat)
    finally:
        con.close()


def run_spark(
    tables: dict[str, Path],
    cores: int,
    memory: str,
    jars_dir: Path,
    repeat: int,
    session: SparkSession | None = None,
    quick_jit: bool = False,
) -> tuple[float | None, list[float], pa.Table]:
    """Time the query on Spark: on ``session`` when given (its start is not measured),
    otherwise on a session of its own, started (and timed) and stopped here."""
    from sde.adapters.spark import read_delta, spark_session, stop

    start: float | None = None
    spark = session
    if spark is None:
        began = time.perf_counter()
        spark = spark_session(
            cores=cores,
            jars_dir=jars_dir,
            memory=memory,
            app_name="sde-bench",
            quick_jit=quick_jit,
        )
        start = time.perf_counter() - began
    try:
        for name, path in tables.items():
            read_delta(spark, path).createOrReplaceTempView(name)
        seconds, result = timed(lambda: spark.sql(QUERY).toArrow(), repeat)
    finally:
        for name in tables:
            spark.catalog.dropTempView(name)
        if session is None:
            stop(spark)
    return start, seconds, result


def seconds_line(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<44} first {seconds[0]:8.2f} s   median {statistics.median(seconds):8.2f} s"
        f"   ({len(seconds)} run{'s' if len(seconds) != 1 else ''})"
    )


def run(
    events: int,
    seed: int,
    repeat: int,
    cores: int,
    memory: str,
    jars_dir: Path,
    folder: Path,
    session: SparkSession | None = None,
    quick_jit: bool = False,
) -> dict[str, Any]:
    print(
        f"== a researcher's query on an extract: {events:,} events, {max(events // 10, 1):,} "
        f"patients, {cores} cores =="
    )
    began = time.perf_counter()
    tables = build(folder, events, seed)
    print(f"built the extract as Delta tables (delta-rs) in {time.perf_counter() - began:.2f} s")
    duck_seconds, duck_result = run_duckdb(tables, cores, repeat)
    print(seconds_line(f"DuckDB (sde's locked connection, threads={cores})", duck_seconds))
    start, spark_seconds, spark_result = run_spark(
        tables, cores, memory, jars_dir, repeat, session, quick_jit
    )
    if start is not None:
        print(f"{'Spark session start (local mode, delta-spark)':<44} {start:8.2f} s")
    else:
        print(f"{'Spark session start (local mode, delta-spark)':<44} (session given, not timed)")
    jit = ", quick JIT" if quick_jit and session is None else ""
    print(seconds_line(f"Spark local[{cores}] (delta-spark{jit})", spark_seconds))
    duck_median = statistics.median(duck_seconds)
    spark_median = statistics.median(spark_seconds)
    ratio = spark_median / duck_median if duck_median > 0 else math.inf
    print(f"ratio Spark / DuckDB (median)                {ratio:8.1f}x")
    equal = same_result(duck_result, spark_result)
    print(f"result rows: DuckDB {duck_result.num_rows:,}, Spark {spark_result.num_rows:,}")
    print(f"results equal: {'yes' if equal else 'NO'}")
    return {
        "events": events,
        "patients": max(events // 10, 1),
        "cores": cores,
        "repeat": repeat,
        "duckdb_seconds": duck_seconds,
        "spark_session_start_seconds": start,
        "spark_quick_jit": quick_jit if session is None else None,
        "spark_seconds": spark_seconds,
        "ratio_spark_over_duckdb": ratio,
        "result_rows": duck_result.num_rows,
        "results_equal": equal,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="event rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the query per engine")
    parser.add_argument("--cores", type=int, default=2, help="DuckDB threads and Spark cores")
    parser.add_argument("--memory", default="4g", help="Spark driver memory")
    parser.add_argument("--jars-dir", type=Path, default=JARS_DIR, help="Delta's jars for Spark")
    parser.add_argument(
        "--quick-jit",
        action="store_true",
        help="start Spark's JVM with its quick compiler only (as the tests do)",
    )
    parser.add_argument("--workdir", type=Path, help="where to build the tables (default: temp)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if min(args.events, args.repeat, args.cores) < 1:
        parser.error("--events, --repeat and --cores must be at least 1")
    with tempfile.TemporaryDirectory(prefix="sde-bench-engines-", dir=args.workdir) as folder:
        results = run(
            args.events,
            args.seed,
            args.repeat,
            args.cores,
            args.memory,
            args.jars_dir,
            Path(folder),
            quick_jit=args.quick_jit,
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if results["results_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
