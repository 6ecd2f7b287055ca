"""The researcher's DuckDB connection reads registered extract tables and nothing else."""

import hashlib
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from sde.adapters.duckdb import (
    ATTACH,
    EXTENSIONS,
    FILE_ACCESS,
    HOST_DATA,
    LOCKED_SETTING,
    GuardedConnection,
    Refusal,
    WorkspaceRefused,
    locked_connection,
)

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


# --- the scratch area ------------------------------------------------------------------


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def test_scratch_is_readable_and_writable(tables: dict[str, Path], scratch: Path) -> None:
    con = locked_connection(tables, scratch=scratch)
    con.execute(f"COPY (select * from gp_events) TO '{scratch}/copy.parquet'")
    assert con.sql(f"select count(*) from read_parquet('{scratch}/copy.parquet')").fetchall() == [
        (4,)
    ]
    assert con.sql(f"select count(*) from glob('{scratch}/*')").fetchall() == [(1,)]


@pytest.mark.parametrize(
    "statement",
    [
        "COPY gp_events TO '{tmp}/leak.csv'",
        "COPY gp_events TO '{scratch}/../leak.csv'",
        "COPY gp_events TO '{scratch}2/leak.csv'",  # a sibling sharing the prefix
        "SELECT * FROM read_csv('{scratch}/../outside.csv')",
        "SELECT * FROM read_csv('{scratch}/./../outside.csv')",
        "SELECT * FROM read_csv('file://{scratch}/../outside.csv')",
        "SELECT * FROM glob('{tmp}/*')",
        "ATTACH '{tmp}/other.duckdb' AS other",
        "SET allowed_directories=['/']",
    ],
)
def test_scratch_opens_nothing_else(
    tables: dict[str, Path], scratch: Path, tmp_path: Path, statement: str
) -> None:
    (tmp_path / "scratch2").mkdir()
    con = locked_connection(tables, scratch=scratch)
    with pytest.raises(duckdb.Error):
        con.execute(statement.format(tmp=tmp_path, scratch=scratch))
    assert not (tmp_path / "leak.csv").exists()
    assert not (tmp_path / "scratch2" / "leak.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()


def test_a_symlink_in_scratch_is_not_followed_out(
    tables: dict[str, Path], scratch: Path, tmp_path: Path
) -> None:
    (scratch / "outside.csv").symlink_to(tmp_path / "outside.csv")
    (scratch / "up").symlink_to(tmp_path)
    (scratch / "inside.csv").symlink_to(scratch / "real.csv")
    (scratch / "real.csv").write_text("x\n5\n")
    con = locked_connection(tables, scratch=scratch)
    # DuckDB follows a link only to check where it really leads: inside is fine.
    assert con.sql(f"select x from read_csv('{scratch}/inside.csv')").fetchall() == [(5,)]
    for statement in (
        f"SELECT * FROM read_csv('{scratch}/outside.csv')",
        f"SELECT * FROM read_text('{scratch}/outside.csv')",
        f"COPY gp_events TO '{scratch}/up/leak.csv'",
    ):
        with pytest.raises(duckdb.PermissionException):
            con.execute(statement)
    assert not (tmp_path / "leak.csv").exists()


@pytest.mark.parametrize("with_scratch", [False, True])
def test_duckdbs_temporary_directory_opens_nothing(
    tables: dict[str, Path],
    scratch: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_scratch: bool,
) -> None:
    """Left at its default, DuckDB's temp directory (./.tmp) is always an allowed one."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "planted.csv").write_text("x\n1\n")
    con = locked_connection(tables, scratch=scratch if with_scratch else None)
    for statement in (
        "COPY gp_events TO '.tmp/leak.csv'",
        f"COPY gp_events TO '{tmp_path}/.tmp/leak.csv'",
        "SELECT * FROM read_csv('.tmp/planted.csv')",
    ):
        with pytest.raises(duckdb.PermissionException):
            con.execute(statement)
    assert not (tmp_path / ".tmp" / "leak.csv").exists()
    [(temp,)] = con.sql("select current_setting('temp_directory')").fetchall()
    assert temp == (f"{scratch}/.duckdb-tmp" if with_scratch else "")


@pytest.mark.parametrize("bad", ["relative/scratch", "/", "missing"])
def test_a_bad_scratch_directory_is_refused(
    tables: dict[str, Path], tmp_path: Path, bad: str
) -> None:
    path = tmp_path / bad if bad == "missing" else Path(bad)
    with pytest.raises(ValueError, match="scratch directory"):
        locked_connection(tables, scratch=path)


# --- the guard: refusals recorded, then raised ------------------------------------------


def _guarded(
    tables: dict[str, Path], scratch: Path, sink: list[Refusal] | None = None
) -> GuardedConnection:
    def record(refusal: Refusal) -> None:
        if sink is None:
            raise RuntimeError("audit log unavailable")
        sink.append(refusal)

    return GuardedConnection(
        locked_connection(tables, scratch=scratch), scratch=scratch, on_refusal=record
    )


@pytest.mark.parametrize(
    ("statement", "rule", "keyword"),
    [
        ("COPY gp_events TO '{tmp}/leak.csv'", FILE_ACCESS, "COPY"),
        (
            "  -- a comment\n/* another */ select * from read_csv('{tmp}/outside.csv')",
            FILE_ACCESS,
            "SELECT",
        ),
        ("ATTACH '{tmp}/other.duckdb'", ATTACH, "ATTACH"),
        ("INSTALL httpfs", EXTENSIONS, "INSTALL"),
        ("LOAD httpfs", EXTENSIONS, "LOAD"),
        ("SET threads=8", LOCKED_SETTING, "SET"),
        ("PRAGMA enable_profiling", LOCKED_SETTING, "PRAGMA"),
        ("with x as (select 1) select * from read_csv('{tmp}/outside.csv')", FILE_ACCESS, "WITH"),
        ("summarise_it('{tmp}')", None, None),
    ],
)
def test_refusals_are_classified_and_recorded_without_the_sql(
    tables: dict[str, Path],
    scratch: Path,
    tmp_path: Path,
    statement: str,
    rule: str | None,
    keyword: str | None,
) -> None:
    refusals: list[Refusal] = []
    con = _guarded(tables, scratch, refusals)
    sql = statement.format(tmp=tmp_path)
    if rule is None:  # a syntax error is not a refusal
        with pytest.raises(duckdb.ParserException):
            con.execute(sql)
        assert refusals == []
        return
    with pytest.raises(WorkspaceRefused) as caught:
        con.execute(sql)
    assert caught.value.rule == rule
    assert caught.value.__context__ is None
    for named in ("leak.csv", "outside.csv", "other.duckdb", "httpfs", sql):
        assert named not in str(caught.value)
    [refusal] = refusals
    assert refusal == Refusal(
        rule,
        str(keyword),
        hashlib.sha256(sql.encode()).hexdigest(),
        refusal.setting,
    )
    assert str(tmp_path) not in repr(refusal.details())
    assert "scratch" in str(caught.value) or rule in (LOCKED_SETTING, EXTENSIONS)
    # The connection goes on working after a refusal.
    assert con.sql("select count(*) from gp_events").fetchall() == [(4,)]


def test_an_unrecorded_refusal_closes_the_connection(
    tables: dict[str, Path], scratch: Path, tmp_path: Path
) -> None:
    con = _guarded(tables, scratch, sink=None)
    with pytest.raises(WorkspaceRefused, match="could not be recorded"):
        con.execute(f"COPY gp_events TO '{tmp_path}/leak.csv'")
    with pytest.raises(duckdb.ConnectionException):
        con.sql("select 1").fetchall()


def test_register_is_refused_and_recorded(tables: dict[str, Path], scratch: Path) -> None:
    refusals: list[Refusal] = []
    con = _guarded(tables, scratch, refusals)
    with pytest.raises(WorkspaceRefused, match=HOST_DATA):
        con.register("more", pa.table({"x": [1]}))
    assert refusals == [Refusal(HOST_DATA, "python")]
    with pytest.raises(duckdb.CatalogException):
        con.sql("select * from more")


def test_the_guard_is_a_context_manager(tables: dict[str, Path], scratch: Path) -> None:
    with _guarded(tables, scratch, []) as con:
        assert con.execute("select count(*) from gp_events").fetchone() == (4,)
    with pytest.raises(duckdb.ConnectionException):
        con.sql("select 1")
