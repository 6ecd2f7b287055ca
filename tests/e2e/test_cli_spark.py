"""``sde ingest --engine spark`` and ``sde extract --engine spark`` as an operator runs
them: real subprocesses of the console script (each starts and stops its own Spark, in
local mode, with Delta's jars from ``.build/spark-jars``), over two copies of one home (one
master key): the local engine on one, Spark on the other, the same tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sde.adapters import delta
from sde.services import ingest
from sde.services.extract import extract_dir
from sde.services.home import init_home, open_home
from sde.services.synth import synthesise
from sde.services.wiring import control_plane
from tests.e2e.test_cli import ok

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark]

DATASETS = ("patients", "gp_events", "admissions", "national_opt_out", "type1_opt_out")


def _rows(path: delta.Location, drop: tuple[str, ...]) -> list[dict[str, object]]:
    rows = delta.read(path).to_pylist()
    return sorted(
        ({k: v for k, v in row.items() if k not in drop} for row in rows),
        key=lambda r: [repr(v) for v in r.values()],
    )


def test_ingest_all_on_spark_matches_the_local_engine(tmp_path: Path) -> None:
    local_root = tmp_path / "local"
    synthesise(init_home(local_root).sources, 120, seed=21)
    spark_root = tmp_path / "spark"
    shutil.copytree(local_root, spark_root)

    local_out = ok("ingest", "--all", "--no-progress", home=local_root, actor="olu")
    spark_out = ok(
        "ingest",
        "--all",
        "--engine",
        "spark",
        "--spark-cores",
        "2",
        "--spark-memory",
        "1g",
        "--no-progress",
        home=spark_root,
        actor="olu",
    )
    # The same counts, file by file (versions differ: see the module docstring of the
    # integration tests); Spark left nothing staged behind.
    assert [line.rsplit(";", 1)[0] for line in spark_out.splitlines()] == [
        line.rsplit(";", 1)[0] for line in local_out.splitlines()
    ]
    assert "gp_events: gp_events.csv:" in spark_out
    assert not list(spark_root.glob(".ingest-spark-*"))
    local, on_spark = open_home(local_root), open_home(spark_root)
    datasets = [str(m["dataset"]) for m in ingest.ingest_manifest(local)]
    assert set(DATASETS) <= set(datasets)
    assert [str(m["dataset"]) for m in ingest.ingest_manifest(on_spark)] == datasets
    for name in datasets:
        assert _rows(ingest.linked_path(on_spark, name), ()) == _rows(
            ingest.linked_path(local, name), ()
        ), name
    drop = ("quarantined_at",)
    assert _rows(ingest.quarantine_path(on_spark, "gp_events"), drop) == _rows(
        ingest.quarantine_path(local, "gp_events"), drop
    )
    with control_plane(on_spark) as plane:
        events = [e for e in plane.audit.events() if e.action == "ingest"]
    assert [e.subject for e in events] == datasets
    assert {e.details["engine"] for e in events} == {"spark"}
    assert {e.actor for e in events} == {"olu"}


def test_extract_on_spark_matches_the_local_engine(tmp_path: Path) -> None:
    """``sde extract --engine spark`` in a process of its own (its own Spark, started and
    stopped by the command) beside ``sde extract`` on a copy of the same home."""
    from tests.integration.test_extract_spark import cli_home

    local_root = tmp_path / "local"
    cli_home(local_root)  # project diabetes approved for patients.sex, olu its researcher
    spark_root = tmp_path / "spark"
    shutil.copytree(local_root, spark_root)
    local_out = ok("extract", "diabetes", home=local_root, actor="olu")
    spark_out = ok(
        "extract",
        "diabetes",
        "--engine",
        "spark",
        "--spark-cores",
        "1",
        home=spark_root,
        actor="olu",
    )
    assert spark_out == local_out
    assert "patients: 3 rows" in spark_out
    local, on_spark = open_home(local_root), open_home(spark_root)
    tables = [_rows(extract_dir(home, "diabetes") / "patients", ()) for home in (local, on_spark)]
    assert tables[0] == tables[1]
    assert len(tables[0]) == 3
    with control_plane(on_spark) as plane:
        builds = [e for e in plane.audit.events() if e.action == "extract.build"]
    assert [e.details["engine"] for e in builds] == ["spark"]
