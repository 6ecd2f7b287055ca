"""The researcher's DuckDB connection reads registered extract tables and nothing else."""

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from sde.adapters.duckdb import locked_connection

pytestmark = [pytest.mark.duckdb, pytest.mark.delta]


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    path = tmp_path / "extract" / "gp_events"
    write_deltalake(str(path), pa.table({"patient_id": ["a", "b", "b"], "value": [1.0, 2.0, 3.0]}))
    write_deltalake(str(path), pa.table({"patient_id": ["c"], "value": [4.0]}), mode="append")
    (tmp_path / "outside.csv").write_text("x\n1\n")
    return {"gp_events": path}


def test_queries_on_registered_tables_work(tables: dict[str, Path]) -> None:
    con = locked_connection(tables)
    assert con.sql("select count(*), sum(value) from gp_events").fetchall() == [(4, 10.0)]


def test_pinned_version_is_read(tables: dict[str, Path]) -> None:
    con = locked_connection(tables, versions={"gp_events": 0})
    assert con.sql("select count(*) from gp_events").fetchall() == [(3,)]


@pytest.mark.parametrize(
    "statement",
    [
        "COPY gp_events TO '{tmp}/leak.csv'",
        "SELECT * FROM read_csv('{tmp}/outside.csv')",
        "SELECT * FROM read_parquet('{tmp}/extract/gp_events/*.parquet')",
        "SELECT * FROM glob('{tmp}/*')",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "INSTALL delta",
        "LOAD httpfs",
        "SET enable_external_access=true",
        "RESET lock_configuration",
        "SET memory_limit='20GB'",
    ],
)
def test_escape_routes_are_refused(tables: dict[str, Path], tmp_path: Path, statement: str) -> None:
    con = locked_connection(tables)
    with pytest.raises(duckdb.Error):
        con.execute(statement.format(tmp=tmp_path))
    assert not (tmp_path / "leak.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()


def test_registered_tables_are_read_only(tables: dict[str, Path]) -> None:
    con = locked_connection(tables)
    with pytest.raises(duckdb.Error):
        con.execute("INSERT INTO gp_events VALUES ('z', 9.0)")
    with pytest.raises(duckdb.Error):
        con.execute("DELETE FROM gp_events")
    assert con.sql("select count(*) from gp_events").fetchall() == [(4,)]


def test_bad_memory_limit_refused(tables: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="memory limit"):
        locked_connection(tables, memory_limit="1; ATTACH 'x'")
