"""Benchmark: ingest throughput, against the floor of reading the same file.

Synthesises N patients into a fresh home, then for each dataset times the full ingest
(validate, pseudonymise, generalise, de-identify, quarantine, Delta commit, manifest)
and, as the baseline in the same run, pyarrow's CSV reader on the same file (the least
any ingest must do). Prints rows/s for both and the ratio.

    .venv/bin/python bench/ingest_speed.py [PATIENTS]     # default 20000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.csv as pacsv

from sde.services.home import init_home
from sde.services.ingest import ingest_file, load_spec, shipped_datasets
from sde.services.synth import synthesise


def main() -> None:
    patients = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
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
            header = path.open(newline="").readline().strip().split(",")
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


if __name__ == "__main__":
    main()
