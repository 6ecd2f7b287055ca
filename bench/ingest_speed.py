"""Benchmark: ingest throughput, against the floor of reading the same file.

Two modes.

**Datasets** (the default): synthesises N patients into a fresh home, then for each
dataset times the full ingest (validate, pseudonymise, generalise, de-identify,
quarantine, Delta commit, manifest) and, as the baseline in the same run, pyarrow's CSV
reader on the same file (the least any ingest must do). Prints rows/s and the ratio.

    .venv/bin/python bench/ingest_speed.py [PATIENTS]     # default 20000

**Events** (issue 10's target): writes a ``gp_events`` file of N events (about 10 per
patient, with a small share of bad rows of every kind), then times, each in a child
process of its own so that its peak memory (RSS) is its own: pyarrow's CSV reader on the
file (the floor), ingest (CSV -> Delta), and the row-wise engine (the path ingest used
before, kept as ``method="rowwise"``). Prints rows/s, peak RSS, the ratios, and whether
the targets are met: at least 500,000 rows/s end to end, peak memory under 4 GB.

    .venv/bin/python bench/ingest_speed.py --events 10000000 [--no-rowwise] [--json PATH]

With ``--spark``, also the Spark engine (``ingest_file(..., spark=...)`` on a local
session of ``local[2]``, started before the clock starts, its start timed apart), with
its rate against the local engine's, its peak memory (the Python driver and Spark's JVM)
and a check that its counts equal the local engine's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from sde.services.home import init_home, open_home
from sde.services.ingest import ingest_file, load_spec, shipped_datasets

TARGET_ROWS_PER_S = 500_000
TARGET_PEAK_BYTES = 4 * 1024**3
_HEADER = ["nhs_number", "event_date", "snomed_code", "term", "value", "unit"]
_CODES = [
    ("271649006", "Systolic blood pressure", "mmHg", 90.0, 180.0),
    ("271650006", "Diastolic blood pressure", "mmHg", 50.0, 110.0),
    ("27113001", "Body weight", "kg", 40.0, 140.0),
    ("50373000", "Body height", "cm", 140.0, 200.0),
    ("1107481000000106", "HbA1c level", "mmol/mol", 30.0, 90.0),
    ("195967001", "Asthma", "", 0.0, 0.0),
    ("35489007", "Depressive disorder", "", 0.0, 0.0),
    ("44054006", "Type 2 diabetes mellitus", "", 0.0, 0.0),
    ("38341003", "Hypertensive disorder", "", 0.0, 0.0),
    ("43878008", 'Streptococcal sore throat, "strep"', "", 0.0, 0.0),
]
_WEIGHTS = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int64)


# --- datasets mode -----------------------------------------------------------------------


def datasets_mode(patients: int) -> None:
    from sde.services.synth import synthesise

    with tempfile.TemporaryDirectory() as tmp:
        home = init_home(Path(tmp) / "h")
        start = time.perf_counter()
        synthesise(home.sources, patients, seed=1)
        print(f"synthesised {patients:,} patients in {time.perf_counter() - start:.1f} s")
        print(f"{'dataset':<18}{'rows':>10}{'read rows/s':>14}{'ingest rows/s':>16}{'ratio':>8}")
        # patients first: clinic letters take their known identifiers from it
        order = sorted(shipped_datasets(), key=lambda n: (n != "patients", n))
        for name in order:
            path = home.sources / f"{name}.csv"
            start = time.perf_counter()
            with path.open(newline="") as f:
                header = f.readline().strip().split(",")
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, "string")),
            )
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            result = ingest_file(home, load_spec(name), path)
            ingest_s = time.perf_counter() - start
            rows = table.num_rows
            assert result.rows_in == rows, (name, result.rows_in, rows)
            print(
                f"{name:<18}{rows:>10,}{rows / read_s:>14,.0f}{rows / ingest_s:>16,.0f}"
                f"{(rows / ingest_s) / (rows / read_s):>8.3f}"
            )


# --- events mode -------------------------------------------------------------------------


def _nhs_numbers(count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct valid NHS numbers (int64), never one repeated digit."""
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        first = rng.integers(100_000_000, 999_999_999, size=2 * (count - total) + 16)
        digits = (first[:, None] // 10 ** np.arange(8, -1, -1)) % 10
        check = 11 - (digits @ _WEIGHTS) % 11
        check[check == 11] = 0
        ok = check != 10
        numbers = first[ok] * 10 + check[ok]
        found.append(numbers)
        total += len(numbers)
    numbers = np.unique(np.concatenate(found))
    repeated = numbers % 1_111_111_111 == 0
    numbers = numbers[~repeated]
    rng.shuffle(numbers)
    return numbers[:count]


def write_events(path: Path, events: int, seed: int = 1, chunk: int = 500_000) -> dict[str, int]:
    """A ``gp_events`` file of ``events`` rows, about 10 per patient, with a small share of
    bad rows (each kind counted in the result): invalid NHS numbers, impossible dates,
    missing codes, exact copies of the row before, and a malformed record per chunk."""
    rng = np.random.default_rng(seed)
    patients = _nhs_numbers(max(events // 10, 1), rng)
    counts = {"invalid_nhs_number": 0, "bad_date": 0, "missing_required": 0}
    counts |= {"duplicate_row": 0, "malformed_row": 0}
    codes = np.array([c[0] for c in _CODES], dtype=object)
    terms = np.array([c[1] for c in _CODES], dtype=object)
    units = np.array([c[2] for c in _CODES], dtype=object)
    low = np.array([c[3] for c in _CODES])
    high = np.array([c[4] for c in _CODES])
    epoch = np.datetime64("2005-01-01")
    written = 0
    with path.open("wb") as out:
        out.write((",".join(_HEADER) + "\n").encode())
        while written < events:
            n = min(chunk, events - written)
            who = patients[rng.integers(0, len(patients), size=n)]
            nhs = who.astype(str).astype(object)
            which = rng.integers(0, len(_CODES), size=n)
            days = epoch + rng.integers(0, 7000, size=n).astype("timedelta64[D]")
            dates = days.astype(str).astype(object)
            measured = units[which] != ""
            values = np.round(low[which] + rng.random(n) * (high[which] - low[which]), 1)
            value_text = np.where(measured, values.astype(str), "").astype(object)
            kind = rng.random(n)
            bad = kind < 0.002
            nhs[bad] = (who[bad] // 10 * 10 + (who[bad] % 10 + 1) % 10).astype(str)
            counts["invalid_nhs_number"] += int(bad.sum())
            bad = (kind >= 0.002) & (kind < 0.004)
            dates[bad] = "2023-02-30"
            counts["bad_date"] += int(bad.sum())
            snomed = codes[which]
            bad = (kind >= 0.004) & (kind < 0.006)
            snomed = np.where(bad, "", snomed).astype(object)
            counts["missing_required"] += int(bad.sum())
            table = pa.table(
                {
                    "nhs_number": pa.array(nhs, pa.string()),
                    "event_date": pa.array(dates, pa.string()),
                    "snomed_code": pa.array(snomed, pa.string()),
                    "term": pa.array(terms[which], pa.string()),
                    "value": pa.array(value_text, pa.string()),
                    "unit": pa.array(units[which], pa.string()),
                }
            )
            copies = np.flatnonzero((kind >= 0.006) & (kind < 0.008))
            copies = copies[copies > 0]
            if len(copies):  # the row before, again
                index = np.arange(n)
                index[copies] = copies - 1
                table = table.take(pa.array(index))
            # A copy of a row that is bad for another reason is still a duplicate_row.
            counts["duplicate_row"] += len(copies)
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            pacsv.write_csv(table, out, write_options=options)
            out.write(b"only,three,fields\n")
            counts["malformed_row"] += 1
            written += n
    counts["rows"] = written + counts["malformed_row"]
    return counts


def _child(mode: str, path: Path, home_dir: Path) -> None:
    """Run one measurement in this (child) process; print its figures as JSON."""
    start = time.perf_counter()
    cpu = time.process_time()
    figures: dict[str, object] = {}
    if mode == "arrow-read":
        names = [f"f{i}" for i in range(len(_HEADER))]
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=lambda _row: "skip"
            ),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
        )
        rows = 0
        for batch in reader:
            rows += batch.num_rows
        figures["rows"] = rows
    elif mode == "spark":
        from sde.services.spark_engine import spark_engine, spark_settings

        home = open_home(home_dir)
        with spark_engine(spark_settings(home), app_name="sde-bench") as spark:
            figures["start_seconds"] = time.perf_counter() - start
            start, cpu = time.perf_counter(), time.process_time()
            result = ingest_file(home, load_spec("gp_events"), path, spark=spark)
            seconds = time.perf_counter() - start
        figures |= {
            "rows": result.rows_in,
            "rows_written": result.rows_written,
            "rows_quarantined": result.rows_quarantined,
            "quarantined_by_reason": dict(result.quarantined_by_reason),
        }
        figures["seconds"] = seconds
        figures["cpu_seconds"] = time.process_time() - cpu
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        jvm = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        figures["peak_rss_bytes"] = (own + jvm) * 1024
        print(json.dumps(figures))
        return
    else:
        home = open_home(home_dir)
        method = "rowwise" if mode == "rowwise" else "batch"
        result = ingest_file(home, load_spec("gp_events"), path, method=method)  # type: ignore[arg-type]
        figures |= {
            "rows": result.rows_in,
            "rows_written": result.rows_written,
            "rows_quarantined": result.rows_quarantined,
            "quarantined_by_reason": dict(result.quarantined_by_reason),
        }
    figures["seconds"] = time.perf_counter() - start
    figures["cpu_seconds"] = time.process_time() - cpu
    figures["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(figures))


def _measure(mode: str, path: Path, home_dir: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(home_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _gb(value: object) -> str:
    return f"{float(str(value)) / 1024**3:.2f} GB"


def events_mode(
    events: int,
    *,
    rowwise: bool,
    json_path: Path | None,
    folder: Path | None,
    spark: bool = False,
) -> int:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        root = Path(tmp)
        path = root / "gp_events.csv"
        start = time.perf_counter()
        expected = write_events(path, events)
        size = path.stat().st_size
        print(
            f"== events: wrote {expected['rows']:,} rows of gp_events ({size / 1e6:,.0f} MB) "
            f"in {time.perf_counter() - start:.1f} s =="
        )
        runs: dict[str, dict[str, object]] = {}
        modes = ["arrow-read", "batch"] + (["rowwise"] if rowwise else [])
        modes += ["spark"] if spark else []
        for mode in modes:
            home_dir = root / f"home-{mode}"
            init_home(home_dir)
            runs[mode] = _measure(mode, path, home_dir)
        batch = runs["batch"]
        rows = int(str(batch["rows"]))
        reasons = batch["quarantined_by_reason"]
        assert isinstance(reasons, dict)
        labels = {
            "arrow-read": "floor: pyarrow.csv reader (strings)",
            "batch": "sde ingest (CSV -> Delta)",
            "rowwise": "baseline: row-wise engine",
            "spark": "sde ingest on Spark local[2]",
        }
        print(f"{'':<38}{'rows/s':>12}{'seconds':>10}{'CPU s':>9}{'peak RSS':>11}")
        for mode, figures in runs.items():
            seconds = float(str(figures["seconds"]))
            print(
                f"{labels[mode]:<38}{rows / seconds:>12,.0f}{seconds:>10.1f}"
                f"{float(str(figures['cpu_seconds'])):>9.1f}{_gb(figures['peak_rss_bytes']):>11}"
            )
        rate = rows / float(str(batch["seconds"]))
        floor = rows / float(str(runs["arrow-read"]["seconds"]))
        print(f"sde ingest is {rate / floor:.3f} of the reader's rate", end="")
        if "rowwise" in runs:
            old = rows / float(str(runs["rowwise"]["seconds"]))
            print(f", {rate / old:.2f}x the row-wise engine", end="")
        print()
        if "spark" in runs:
            on_spark = rows / float(str(runs["spark"]["seconds"]))
            print(
                f"sde ingest on Spark is {on_spark / rate:.2f}x the local engine "
                f"(after {float(str(runs['spark']['start_seconds'])):.1f} s to start Spark; "
                "peak RSS counts Spark's JVM)"
            )
        print(
            f"written {batch['rows_written']:,}, quarantined {batch['rows_quarantined']:,} "
            f"({', '.join(f'{k} {v:,}' for k, v in sorted(reasons.items()))})"
        )
        peak = float(str(batch["peak_rss_bytes"]))
        speed_met = rate >= TARGET_ROWS_PER_S
        memory_met = peak < TARGET_PEAK_BYTES
        print(
            f"target: at least {TARGET_ROWS_PER_S:,} rows/s end to end: "
            f"{'met' if speed_met else 'NOT met'} ({rate:,.0f} rows/s)"
        )
        print(
            f"target: peak memory under {_gb(TARGET_PEAK_BYTES)}: "
            f"{'met' if memory_met else 'NOT met'} ({_gb(peak)})"
        )
        if json_path is not None:
            json_path.write_text(
                json.dumps({"events": events, "file_bytes": size, "runs": runs}, indent=2)
            )
        # Exact copies also happen by chance (same patient, code and date, no value), also
        # among rows that are bad for another reason: those counts move to duplicate_row.
        problems = []
        if rows != expected["rows"] or reasons.get("malformed_row") != expected["malformed_row"]:
            problems.append("rows or malformed rows")
        for kind in ("invalid_nhs_number", "bad_date", "missing_required"):
            if not expected[kind] * 0.99 <= reasons.get(kind, 0) <= expected[kind]:
                problems.append(kind)
        if reasons.get("duplicate_row", 0) < expected["duplicate_row"]:
            problems.append("duplicate_row")
        if "rowwise" in runs and any(
            runs["rowwise"][k] != batch[k]
            for k in ("rows", "rows_written", "quarantined_by_reason")
        ):
            problems.append("the row-wise engine's counts differ from the batch engine's")
        if "spark" in runs and any(
            runs["spark"][k] != batch[k] for k in ("rows", "rows_written", "quarantined_by_reason")
        ):
            problems.append("the Spark engine's counts differ from the local engine's")
        if problems:
            print(f"counts differ ({', '.join(problems)}): {reasons} vs generated {expected}")
            return 1
        if "rowwise" in runs:
            print("counts: the batch and row-wise engines agree")
        if "spark" in runs:
            print("counts: the local and Spark engines agree")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        _child(args[1], Path(args[2]), Path(args[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patients", nargs="?", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--no-rowwise", action="store_true", help="skip the row-wise baseline")
    parser.add_argument("--spark", action="store_true", help="also the Spark engine (events)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--tmp", type=Path, default=None, help="where the files are written")
    options = parser.parse_args(args)
    if options.events is None:
        datasets_mode(options.patients)
        return 0
    return events_mode(
        options.events,
        rowwise=not options.no_rowwise,
        json_path=options.json,
        folder=options.tmp,
        spark=options.spark,
    )


if __name__ == "__main__":
    sys.exit(main())
