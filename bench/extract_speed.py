"""Benchmark: building a project's extract from a large linked table, against the floor.

Writes a linked ``gp_events`` table of ``--events`` rows (``--per-patient`` events per
patient, shuffled, as ingest leaves them) and both NHS opt-out registers (``--opt-out``
of the patients on the national register, half as many on type 1) into a fresh home, then
in a child process (so its peak memory is its own):

- **sde**: ``sde.services.extract.build_extract`` for a project approved for the table:
  registers read and pinned, type 1 and national opt-outs applied, ``pid`` replaced by the
  project pseudonym, the extract written as Delta, the manifest counted;
- **floor** (the baseline, same run, same child): the same table version read and written
  to another Delta table unchanged (no filter, no pseudonyms): the least any extract does.

Prints rows/s for both, the ratio, peak memory (the child's ``ru_maxrss``), and checks
that the extract has every row but the opted-out patients' (counts reconcile).

With ``--spark``, a second child builds the same extract with the Spark engine
(``build_extract_spark`` on ``local[--spark-cores]``; the session's start timed apart) and
prints its rate against the local engine's measured above, its peak memory (the Python
driver and Spark's JVM, its child) and checks that both engines wrote the same counts.

    .venv/bin/python -m bench.extract_speed [--events 10000000] [--per-patient 10] [--spark]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

from sde.adapters import delta
from sde.domain.optouts import NATIONAL, TYPE1
from sde.services.extract import ExtractRequest, build_extract
from sde.services.home import Home, init_home, open_home

DATASET = "gp_events"
CODES = [f"C{n:04d}" for n in range(500)]
BATCH = 1_000_000


def _pids(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct 32-hex-character strings shaped like linkage pseudonyms."""
    raw = rng.integers(0, 2**63, size=(count, 2), dtype=np.int64)
    text = np.array([f"{a:016x}{b:016x}" for a, b in raw.tolist()], dtype=object)
    if len(set(text.tolist())) != count:  # pragma: no cover - 128 random bits
        raise RuntimeError("generated pids collided; run again")
    return text


def _event_batches(
    pids: np.ndarray, events: int, rng: np.random.Generator
) -> Iterator[pa.RecordBatch]:
    schema = pa.schema(
        [
            pa.field("pid", pa.string(), nullable=False),
            pa.field("event_date", pa.date32()),
            pa.field("code", pa.string()),
            pa.field("value", pa.float64()),
        ]
    )
    owners = np.repeat(np.arange(len(pids)), -(-events // len(pids)))[:events]
    rng.shuffle(owners)
    codes = pa.array(CODES)
    for start in range(0, events, BATCH):
        n = min(BATCH, events - start)
        value = rng.normal(50.0, 10.0, n)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(pids[owners[start : start + n]], type=pa.string()),
                pa.array(rng.integers(12_000, 20_000, n, dtype=np.int32), type=pa.date32()),
                codes.take(pa.array(rng.integers(0, len(CODES), n))),
                pa.array(value, mask=rng.random(n) < 0.2),
            ],
            schema=schema,
        )


def prepare(home: Home, events: int, per_patient: int, opt_out: float, seed: int) -> int:
    """Write the linked table and the registers; returns the rows the extract must keep."""
    rng = np.random.default_rng(seed)
    pids = _pids(max(1, events // per_patient), rng)
    first = next(iter(_event_batches(pids[:1], 1, rng)))
    reader = pa.RecordBatchReader.from_batches(first.schema, _event_batches(pids, events, rng))
    delta.append(home.linked / DATASET, reader)
    national = pids[rng.random(len(pids)) < opt_out]
    type1 = pids[rng.random(len(pids)) < opt_out / 2]
    for name, chosen in ((NATIONAL, national), (TYPE1, type1)):
        delta.append(home.linked / name, pa.table({"pid": pa.array(chosen, type=pa.string())}))
    removed = set(national.tolist()) | set(type1.tolist())
    table = delta.read(home.linked / DATASET, columns=["pid"]).column("pid")
    kept = pc.sum(pc.invert(pc.is_in(table, value_set=pa.array(sorted(removed)))))
    return int(kept.as_py())


def child(home_dir: Path) -> dict[str, float]:
    """Runs in its own process: the extract, then the floor, timed."""
    home = open_home(home_dir)
    start, cpu = time.perf_counter(), time.process_time()
    manifest = build_extract(home, _request(), {DATASET: "gp"}, actor="bench")
    extract_s, extract_cpu = time.perf_counter() - start, time.process_time() - cpu
    table = manifest.tables[DATASET]

    source = home.linked / DATASET
    ds = delta.dataset(source, delta.version(source))
    start, cpu = time.perf_counter(), time.process_time()
    reader = pa.RecordBatchReader.from_batches(ds.schema, ds.to_batches(batch_size=131_072))
    write_deltalake(str(home_dir / "floor-copy"), reader, mode="overwrite")
    floor_s, floor_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "rows_in": table.rows_in_source,
        "rows_written": table.rows_written,
        "rows_removed": table.rows_removed_by_opt_out,
        "extract_s": extract_s,
        "extract_cpu_s": extract_cpu,
        "floor_s": floor_s,
        "floor_cpu_s": floor_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _request() -> ExtractRequest:
    return ExtractRequest(
        project_id="bench-project",
        purpose="research",
        national_opt_out_applies=True,
        datasets={DATASET: ("event_date", "code", "value")},
        sponsor_type="academic",
        sponsor_organisation="Bench University",
    )


def spark_child(home_dir: Path, cores: int, memory: str) -> dict[str, float]:
    """Runs in its own process: a Spark session started (timed), the extract built on it."""
    from sde.services.extract_spark import build_extract_spark
    from sde.services.spark_engine import spark_engine, spark_settings

    home = open_home(home_dir)
    settings = spark_settings(home).with_overrides(cores=cores, memory=memory)
    start = time.perf_counter()
    with spark_engine(settings, app_name="sde-bench") as spark:
        started_s = time.perf_counter() - start
        start = time.perf_counter()
        manifest = build_extract_spark(spark, home, _request(), {DATASET: "gp"}, actor="bench")
        extract_s = time.perf_counter() - start
    table = manifest.tables[DATASET]
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    jvm = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "rows_in": table.rows_in_source,
        "rows_written": table.rows_written,
        "rows_removed": table.rows_removed_by_opt_out,
        "start_s": started_s,
        "extract_s": extract_s,
        "peak_rss_mb": (own + jvm) / 1024,
    }


def _run_child(*args: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.extract_speed", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--per-patient", type=int, default=10)
    parser.add_argument("--opt-out", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--spark", action="store_true", help="also build the extract with the Spark engine"
    )
    parser.add_argument("--spark-cores", type=int, default=2)
    parser.add_argument("--spark-memory", default="4g")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--spark-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    if args.spark_child is not None:
        print(json.dumps(spark_child(args.spark_child, args.spark_cores, args.spark_memory)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / "h")
        start = time.perf_counter()
        expected = prepare(home, args.events, args.per_patient, args.opt_out, args.seed)
        print(
            f"linked table of {args.events:,} events written in {time.perf_counter() - start:.1f} s"
        )
        figures = _run_child("--child", str(home.root))
        on_spark: dict[str, float] | None = None
        if args.spark:
            on_spark = _run_child(
                "--spark-child",
                str(home.root),
                "--spark-cores",
                str(args.spark_cores),
                "--spark-memory",
                args.spark_memory,
            )

    rows = figures["rows_in"]
    if figures["rows_written"] != expected or rows != args.events:
        print(
            f"COUNTS DO NOT RECONCILE: {figures['rows_written']:,} written, {expected:,} "
            f"expected, {rows:,} read of {args.events:,}"
        )
        return 1
    if figures["rows_written"] + figures["rows_removed"] != rows:
        print("COUNTS DO NOT RECONCILE: written + removed != rows in the source")
        return 1
    sde_rate = rows / figures["extract_s"]
    floor_rate = rows / figures["floor_s"]
    print(f"== extract: {rows:,} events, {rows // args.per_patient:,} patients ==")
    print(
        f"sde: build_extract          {sde_rate:>14,.0f} rows/s  ({figures['extract_s']:.2f} s, "
        f"{figures['extract_cpu_s']:.2f} CPU s)"
    )
    print(
        f"floor: Delta read + write   {floor_rate:>14,.0f} rows/s  ({figures['floor_s']:.2f} s, "
        f"{figures['floor_cpu_s']:.2f} CPU s)"
    )
    print(f"ratio sde / floor            {sde_rate / floor_rate:.2f}x")
    print(
        f"rows written {figures['rows_written']:,}, removed by opt-outs "
        f"{figures['rows_removed']:,} (reconciled)"
    )
    print(f"peak memory of the extract process: {figures['peak_rss_mb']:,.0f} MB")
    result: dict[str, object] = {**figures, "events": args.events}
    if on_spark is not None:
        counts = ("rows_in", "rows_written", "rows_removed")
        if any(on_spark[name] != figures[name] for name in counts):
            print("COUNTS DO NOT RECONCILE: the Spark engine's counts differ from the local's")
            return 1
        spark_rate = rows / on_spark["extract_s"]
        print(
            f"spark: build_extract_spark  {spark_rate:>14,.0f} rows/s  "
            f"({on_spark['extract_s']:.2f} s on local[{args.spark_cores}], after "
            f"{on_spark['start_s']:.1f} s to start Spark)"
        )
        print(f"ratio spark / sde            {spark_rate / sde_rate:.2f}x")
        print(
            f"peak memory of the Spark build (driver + JVM): {on_spark['peak_rss_mb']:,.0f} MB; "
            "same counts as the local engine"
        )
        result["spark"] = on_spark
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
