"""Escape tests (issue 7): from inside a workspace session, every way out is blocked with
a reason that names the rule, and leaves a ``workspace.refused`` (or airlock) event in
the audit chain that holds no SQL text and no value.

One home for the module: project ``diabetes`` (alice a member, also an output checker)
and project ``cancer`` (mallory), both with extracts, over a linked zone of three
patients. Tests look only at the audit events written after they start.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from sde import workspace
from sde.adapters.duckdb import (
    ATTACH,
    EXTENSIONS,
    FILE_ACCESS,
    HOST_DATA,
    LOCKED_SETTING,
    GuardedConnection,
    WorkspaceRefused,
)
from sde.domain.audit import AuditEvent
from sde.domain.releases import Status, Vote
from sde.errors import ConfigError, PolicyDenied
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.wiring import control_plane, policy_engine, release_service
from sde.workspace.release import request_release
from sde.workspace.scratch import SCRATCH_ENV, check_scratch
from tests.factories import (
    airlock_project,
    application,
    approve_through_board,
    linked_patients,
    sex_extract,
)

pytestmark = [pytest.mark.sql, pytest.mark.policy, pytest.mark.duckdb, pytest.mark.delta]

NHS = ["9434765919", "9434765870", "4010232137"]
# A valid NHS number put into refused SQL: it must appear in no message and no event.
SENTINEL = "9434765919"
PROJECT = "diabetes"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = init_home(tmp_path_factory.mktemp("escape") / "h")
    linked_patients(home, NHS)
    with control_plane(home) as store:
        engine = policy_engine(home)
        airlock_project(store, engine, alice_checks=True)
        ProjectService(store).create_project(
            "olu", application("cancer", {"patients": ["sex"]}, sponsor="Uni")
        )
        ProjectService(store).add_member("olu", "cancer", "mallory")
        approve_through_board(store, engine, "cancer", decided_by="bea")
    for project in (PROJECT, "cancer"):
        sex_extract(home, project)
    # Another project's data as a DuckDB file, to try to ATTACH.
    other = duckdb.connect(str(home.project_workspace("cancer") / "cancer.duckdb"))
    other.execute("create table t as select 1 as x")
    other.close()
    return home


@pytest.fixture(autouse=True)
def _no_session_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SCRATCH_ENV, "SDE_PROJECT", "SDE_HOME", "SDE_USER"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def con(home: Home) -> Iterator[GuardedConnection]:
    with workspace.connect(PROJECT, home=home, user="alice") as connection:
        yield connection


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    return tmp_path


def _seq(home: Home) -> int:
    with control_plane(home) as store:
        return store.audit.count()


def _events_since(home: Home, seq: int) -> list[AuditEvent]:
    with control_plane(home) as store:
        return store.audit.events(after_seq=seq)


def _refused(home: Home, seq: int) -> AuditEvent:
    [event] = [e for e in _events_since(home, seq) if e.action == "workspace.refused"]
    return event


def _parquet_files(folder: Path) -> list[Path]:
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no parquet files under {folder.name}"
    return files


def _assert_refused(
    home: Home, con: GuardedConnection, sql: str, rule: str, *, via: str = "execute"
) -> WorkspaceRefused:
    """Run ``sql``; it must be refused naming ``rule``, with one audit event for it that
    names the actor, project and rule, carries the SQL's digest, and no SQL text."""
    before = _seq(home)
    run = con.execute if via == "execute" else con.sql
    with pytest.raises(WorkspaceRefused) as caught:
        run(sql)
    refused = caught.value
    assert isinstance(refused, PolicyDenied)
    assert isinstance(refused, duckdb.Error)  # code catching duckdb errors still does
    assert refused.rule == rule
    message = str(refused)
    assert rule in message
    assert SENTINEL not in message
    assert sql not in message
    assert refused.__cause__ is None
    assert refused.__context__ is None  # DuckDB's own message quotes the SQL
    event = _refused(home, before)
    assert (event.actor, event.subject) == ("alice", f"project:{PROJECT}")
    assert event.details["project"] == PROJECT
    assert event.details["reason"] == rule
    assert event.details["sql_sha256"] == hashlib.sha256(sql.encode()).hexdigest()
    stored = repr(event.details)
    assert SENTINEL not in stored
    assert sql not in stored
    return refused


# --- the scratch area ------------------------------------------------------------------


def test_scratch_area_is_per_person_and_private(home: Home, con: GuardedConnection) -> None:
    expected = home.project_workspace(PROJECT) / "scratch" / "alice"
    assert con.scratch == expected
    assert workspace.scratch_dir(PROJECT, home=home, user="alice") == expected
    assert stat.S_IMODE(expected.stat().st_mode) == 0o700


def test_scratch_area_from_the_environment(
    home: Home, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pod_scratch = tmp_path / "pod-scratch"
    monkeypatch.setenv(SCRATCH_ENV, str(pod_scratch))
    with workspace.connect(PROJECT, home=home, user="alice") as con:
        assert con.scratch == pod_scratch
        con.execute(f"COPY (select 1 as x) TO '{pod_scratch}/x.parquet'")
    assert (pod_scratch / "x.parquet").is_file()
    assert stat.S_IMODE(pod_scratch.stat().st_mode) == 0o700


@pytest.mark.parametrize("where", ["root", "home", "lake", "linked", "other-project"])
def test_a_scratch_area_that_would_open_more_is_refused(
    home: Home, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    path = {
        "root": Path("/"),
        "home": home.root,
        "lake": home.lake,
        "linked": home.linked,
        "other-project": home.project_workspace("cancer") / "scratch" / "alice",
    }[where]
    path.mkdir(parents=True, exist_ok=True)
    with pytest.raises(ConfigError, match="scratch area"):
        check_scratch(path, home, PROJECT)
    monkeypatch.setenv(SCRATCH_ENV, str(path))
    with pytest.raises(ConfigError, match="scratch area"):
        workspace.connect(PROJECT, home=home, user="alice")


def test_files_inside_scratch_can_be_written_and_read(home: Home, con: GuardedConnection) -> None:
    before = _seq(home)
    scratch = con.scratch
    assert scratch is not None
    con.execute(
        f"COPY (select sex, count(*) as n from patients group by sex) TO '{scratch}/by_sex.parquet'"
    )
    rows = con.sql(f"select * from read_parquet('{scratch}/by_sex.parquet') order by sex")
    assert rows.fetchall() == [("F", 2), ("M", 1)]
    con.sql("select * from patients order by sex").write_csv(str(scratch / "p.csv"))
    assert con.execute(f"select count(*) from read_csv('{scratch}/p.csv')").fetchall() == [(3,)]
    pd.DataFrame({"a": [1, 2]}).to_parquet(scratch / "mine.parquet")
    assert con.sql(f"select sum(a) from '{scratch}/mine.parquet'").fetchall() == [(3,)]
    assert [e for e in _events_since(home, before) if e.action == "workspace.refused"] == []


# --- DuckDB: files, databases, extensions, settings --------------------------------------


def test_copy_to_outside_scratch_is_refused(
    home: Home, con: GuardedConnection, outside: Path
) -> None:
    sql = f"COPY (select '{SENTINEL}' as nhs_number) TO '{outside}/leak.csv'"
    refused = _assert_refused(home, con, sql, FILE_ACCESS)
    assert str(con.scratch) in str(refused)  # says where files may go
    assert not (outside / "leak.csv").exists()


def test_export_database_outside_scratch_is_refused(
    home: Home, con: GuardedConnection, outside: Path
) -> None:
    con.execute(f"create table mine as select '{SENTINEL}' as v")
    _assert_refused(home, con, f"EXPORT DATABASE '{outside}/dump'", FILE_ACCESS)
    assert not (outside / "dump").exists() or not any((outside / "dump").iterdir())


def test_writing_a_relation_outside_scratch_is_refused(
    home: Home, con: GuardedConnection, outside: Path
) -> None:
    before = _seq(home)
    with pytest.raises(WorkspaceRefused, match="scratch"):
        con.table("patients").write_csv(str(outside / "leak.csv"))
    assert not (outside / "leak.csv").exists()
    event = _refused(home, before)
    assert event.details["reason"] == FILE_ACCESS
    assert event.details["statement"] == "python"


def test_reading_the_homes_config_is_refused(home: Home, con: GuardedConnection) -> None:
    sql = f"select * from read_csv('{home.root / 'config.yaml'}') where 1 = {SENTINEL}"
    _assert_refused(home, con, sql, FILE_ACCESS, via="sql")


def test_reading_the_master_key_is_refused(home: Home, con: GuardedConnection) -> None:
    _assert_refused(home, con, f"select * from read_blob('{home.key_path}')", FILE_ACCESS)


def test_reading_another_projects_extract_is_refused(home: Home, con: GuardedConnection) -> None:
    [first, *_] = _parquet_files(home.project_workspace("cancer") / "extract")
    _assert_refused(home, con, f"select * from read_parquet('{first}')", FILE_ACCESS, via="sql")
    glob = home.project_workspace("cancer") / "extract" / "**" / "*.parquet"
    _assert_refused(home, con, f"select * from read_parquet('{glob}')", FILE_ACCESS, via="sql")


def test_reading_the_linked_zone_is_refused(home: Home, con: GuardedConnection) -> None:
    [first, *_] = _parquet_files(home.linked / "patients")
    _assert_refused(home, con, f"select pid from read_parquet('{first}')", FILE_ACCESS)
    _assert_refused(home, con, f"select * from glob('{home.linked}/*')", FILE_ACCESS)


def test_path_traversal_out_of_scratch_is_refused(home: Home, con: GuardedConnection) -> None:
    [first, *_] = _parquet_files(home.linked / "patients")
    up = "/".join([".."] * len(con.scratch.relative_to(home.root).parts))  # type: ignore[union-attr]
    traversal = f"{con.scratch}/{up}/{first.relative_to(home.root)}"
    assert Path(os.path.normpath(traversal)) == first  # it does lead to the linked zone
    _assert_refused(home, con, f"select pid from read_parquet('{traversal}')", FILE_ACCESS)
    _assert_refused(home, con, f"COPY patients TO '{con.scratch}/../../leak.csv'", FILE_ACCESS)
    assert not (home.project_workspace(PROJECT) / "leak.csv").exists()


def test_symlinks_out_of_scratch_are_not_followed(home: Home, con: GuardedConnection) -> None:
    scratch = con.scratch
    assert scratch is not None
    [first, *_] = _parquet_files(home.linked / "patients")
    (scratch / "linked.parquet").symlink_to(first)
    (scratch / "linked-dir").symlink_to(home.linked)
    (scratch / "other-project").symlink_to(home.project_workspace("cancer"))
    try:
        _assert_refused(
            home, con, f"select pid from read_parquet('{scratch}/linked.parquet')", FILE_ACCESS
        )
        inner = f"{scratch}/linked-dir/patients/{first.name}"
        _assert_refused(home, con, f"select pid from read_parquet('{inner}')", FILE_ACCESS)
        _assert_refused(
            home, con, f"COPY patients TO '{scratch}/other-project/leak.csv'", FILE_ACCESS
        )
        assert not (home.project_workspace("cancer") / "leak.csv").exists()
    finally:
        for name in ("linked.parquet", "linked-dir", "other-project"):
            (scratch / name).unlink()


def test_attaching_another_projects_database_is_refused(home: Home, con: GuardedConnection) -> None:
    target = home.project_workspace("cancer") / "cancer.duckdb"
    refused = _assert_refused(home, con, f"ATTACH '{target}' AS cancer (READ_ONLY)", ATTACH)
    assert "attached" in str(refused)
    attached = con.sql("select database_name from duckdb_databases()").fetchall()
    assert "cancer" not in {name for (name,) in attached}


@pytest.mark.parametrize("sql", ["INSTALL httpfs", "LOAD httpfs", "FORCE INSTALL delta"])
def test_extensions_cannot_be_installed_or_loaded(
    home: Home, con: GuardedConnection, sql: str
) -> None:
    _assert_refused(home, con, sql, EXTENSIONS)


@pytest.mark.parametrize(
    ("sql", "setting"),
    [
        ("SET enable_external_access=true", "enable_external_access"),
        ("RESET lock_configuration", "lock_configuration"),
        ("SET allowed_directories=['/']", "allowed_directories"),
        ("SET temp_directory='/tmp'", "temp_directory"),
    ],
)
def test_locked_settings_cannot_be_changed(
    home: Home, con: GuardedConnection, sql: str, setting: str
) -> None:
    before = _seq(home)
    refused = _assert_refused(home, con, sql, LOCKED_SETTING)
    assert setting in str(refused)
    assert _refused(home, before).details["setting"] == setting
    assert con.sql("select current_setting('enable_external_access')").fetchall() == [(False,)]


def test_registering_host_data_is_refused(home: Home, con: GuardedConnection) -> None:
    before = _seq(home)
    with pytest.raises(WorkspaceRefused, match="registering host data") as caught:
        con.register("smuggled", pd.DataFrame({"nhs_number": [SENTINEL]}))
    assert SENTINEL not in str(caught.value)
    event = _refused(home, before)
    assert (event.actor, event.details["reason"]) == ("alice", HOST_DATA)
    assert "sql_sha256" not in event.details
    with pytest.raises(duckdb.Error):
        con.sql("select * from smuggled").fetchall()


def test_ordinary_errors_are_not_refusals(home: Home, con: GuardedConnection) -> None:
    before = _seq(home)
    with pytest.raises(duckdb.CatalogException) as caught:
        con.sql("select * from no_such_table")
    assert not isinstance(caught.value, PolicyDenied)
    assert [e for e in _events_since(home, before) if e.action == "workspace.refused"] == []


def test_what_notebooks_use_still_works(con: GuardedConnection) -> None:
    assert con.sql("show tables").df()["name"].tolist() == ["patients"]
    assert con.query("select count(*) as n from patients").df()["n"].tolist() == [3]
    assert con.execute("select count(*) from patients where sex = $s", {"s": "F"}).fetchone() == (
        2,
    )
    assert con.execute("select sex from patients order by sex").fetchall() == [
        ("F",),
        ("F",),
        ("M",),
    ]
    assert con.execute("select 1 as one").df()["one"].tolist() == [1]
    relation: Any = con.table("patients").filter("sex = 'M'").aggregate("count(*)")
    assert relation.fetchall() == [(1,)]
    left, right = con.table("patients").set_alias("a"), con.table("patients").set_alias("b")
    joined: Any = left.join(right, "a.patient_id = b.patient_id")
    assert len(joined) == 3
    assert str(con.scratch) in repr(con)


# --- the airlock -----------------------------------------------------------------------


def _release_events(home: Home, seq: int, request_id: str) -> list[AuditEvent]:
    return [e for e in _events_since(home, seq) if e.subject == f"release:{request_id}"]


def _approve_by_two_checkers(home: Home, request_id: str) -> Status:
    with control_plane(home) as store:
        airlock = release_service(
            home, store, policy_engine(home, audit=store.audit, actor="dev"), scan=False
        )
        airlock.review(request_id, "carol", Vote.APPROVE)
        return airlock.review(request_id, "dev", Vote.APPROVE)


def _assert_never_released(home: Home, request_id: str, rule: str, seq: int) -> None:
    assert _approve_by_two_checkers(home, request_id) is Status.APPROVED
    with control_plane(home) as store:
        airlock = release_service(home, store, policy_engine(home), scan=False)
        with pytest.raises(PolicyDenied, match=rule):
            airlock.publish(request_id, "dev")
        assert store.get_release_request(request_id).status is Status.APPROVED
    assert not (home.egress / request_id).exists()
    events = _release_events(home, seq, request_id)
    [added] = [e for e in events if e.action == "release.add_file"]
    assert added.details["checks"] == "fail"
    refusals = [e for e in events if e.action == "release.publish_refused"]
    assert len(refusals) == 2  # when the last approval came in, and when asked again
    assert all(any(rule in r for r in e.details["reasons"]) for e in refusals)
    decisions = [
        e
        for e in _events_since(home, seq)
        if e.action == "policy.decision" and e.details["package"] == "sde.egress"
    ]
    assert decisions
    assert all(e.details["allow"] is False for e in decisions)


def test_row_level_data_is_filed_but_never_released(home: Home) -> None:
    before = _seq(home)
    folder = workspace.outputs_dir(PROJECT, home=home)
    rows = pd.DataFrame({"age": [30 + i % 50 for i in range(501)], "n": [11] * 501})
    rows.to_csv(folder / "rows.csv", index=False)
    request = request_release(
        {"rows.csv": "rows.csv"},
        project=PROJECT,
        title="every row",
        exceptions={"rows.csv": "please"},  # no exception can release row-level data
        home=home,
        user="alice",
    )
    assert request.status is Status.SUBMITTED
    with control_plane(home) as store:
        [file] = store.list_release_files(request.id)
    [row_level] = [c for c in file.checks if c["name"] == "row_level"]
    assert row_level["status"] == "fail"
    _assert_never_released(home, request.id, "row_level", before)


def test_project_pseudonyms_are_filed_but_never_released(home: Home) -> None:
    before = _seq(home)
    with workspace.connect(PROJECT, home=home, user="alice") as con:
        ids = con.sql("select patient_id, sex from patients order by patient_id").df()
    assert all(len(p) == 32 for p in ids["patient_id"])
    ids.to_csv(workspace.outputs_dir(PROJECT, home=home) / "ids.csv", index=False)
    request = request_release(
        {"ids.csv": "ids.csv"},
        project=PROJECT,
        title="the cohort",
        exceptions={"ids.csv": "for linkage"},
        home=home,
        user="alice",
    )
    with control_plane(home) as store:
        [file] = store.list_release_files(request.id)
    [pseudonyms] = [c for c in file.checks if c["name"] == "pseudonyms"]
    assert pseudonyms["status"] == "fail"
    assert not any(p in repr(file.checks) for p in ids["patient_id"])
    _assert_never_released(home, request.id, "pseudonyms", before)


def test_approving_ones_own_request_is_refused_and_audited(home: Home) -> None:
    folder = workspace.outputs_dir(PROJECT, home=home)
    pd.DataFrame({"sex": ["F", "M"], "n": [120, 98]}).to_csv(folder / "own.csv", index=False)
    request = request_release(
        {"own.csv": "own.csv"}, project=PROJECT, title="t", home=home, user="alice"
    )
    before = _seq(home)
    with control_plane(home) as store:
        airlock = release_service(home, store, policy_engine(home), scan=False)
        with pytest.raises(PolicyDenied, match="authors never review their own requests"):
            airlock.review(request.id, "alice", Vote.APPROVE)
        assert store.list_reviews(request.id) == []
        assert store.get_release_request(request.id).status is Status.SUBMITTED
    [event] = _events_since(home, before)
    assert (event.actor, event.action, event.subject) == (
        "alice",
        "release.review_refused",
        f"release:{request.id}",
    )
    assert event.details == {"reasons": ["authors never review their own requests"]}
