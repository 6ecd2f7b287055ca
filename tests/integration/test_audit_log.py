"""The audit log in the control database: appends, tamper detection, concurrency, CLI."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sde.adapters.sql import SqlAuditLog, audit_events, make_engine, open_control_plane, upgrade
from sde.cli import main
from sde.domain.audit import GENESIS_HASH, AuditDetailsError, AuditEntry, next_event
from sde.services.home import Home, Settings, init_home
from sde.services.ports import AuditSink
from tests.integration.test_sql_backends import SQL_BACKENDS, fresh_database

pytestmark = pytest.mark.sql

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: sa.Engine) -> SqlAuditLog:
    return SqlAuditLog(engine)


@pytest.fixture(params=SQL_BACKENDS)
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    with fresh_database(request, tmp_path) as url:
        settings = (
            Settings() if request.param == "sqlite" else Settings(extra={"database_url": url})
        )
        yield init_home(tmp_path / "h", settings)


def record_steps(log: SqlAuditLog, n: int) -> None:
    for i in range(1, n + 1):
        log.record("system", "test.step", f"thing:{i}", {"i": i})


def tamper(engine: sa.Engine, statement: str) -> None:
    """Change the log behind the application's back, as someone with the database file
    (or superuser rights) could: the append-only triggers go first."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.exec_driver_sql(statement)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sql_audit_log_is_an_audit_sink(log: SqlAuditLog) -> None:
    sink: AuditSink = log
    sink.record("alice", "project.created", "project:p-1", {"datasets": ["gp"]})
    [event] = log.events()
    assert (event.seq, event.prev_hash) == (1, GENESIS_HASH)
    assert event.details == {"datasets": ["gp"]}
    assert datetime.fromisoformat(event.at).tzinfo is not None


def test_appends_chain_in_order(log: SqlAuditLog) -> None:
    record_steps(log, 5)
    events = log.events()
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
    assert log.count() == 5
    assert [e.seq for e in log.tail(2)] == [4, 5]
    assert [e.seq for e in log.events(after_seq=3)] == [4, 5]
    result = log.verify()
    assert result.intact
    assert (result.events, result.head_hash) == (5, events[-1].hash)


def test_refused_details_append_nothing(log: SqlAuditLog) -> None:
    with pytest.raises(AuditDetailsError, match="patient-level"):
        log.record("system", "ingest.completed", "dataset:gp", {"postcode": "x"})
    assert log.count() == 0


def test_edited_details_detected_with_the_right_seq(log: SqlAuditLog, engine: sa.Engine) -> None:
    record_steps(log, 5)
    tamper(engine, "UPDATE audit_events SET details = '{\"i\": 999}' WHERE seq = 3")
    result = log.verify()
    assert not result.intact
    assert result.broken_seq == 3
    assert "event 3 was edited" in (result.problem or "")
    assert result.events == 2


def test_deleted_middle_event_detected_with_the_right_seq(
    log: SqlAuditLog, engine: sa.Engine
) -> None:
    record_steps(log, 5)
    tamper(engine, "DELETE FROM audit_events WHERE seq = 2")
    result = log.verify()
    assert not result.intact
    assert result.broken_seq == 2
    assert "event 2 is missing" in (result.problem or "")


def test_unreadable_details_are_a_broken_link_not_a_crash(
    log: SqlAuditLog, engine: sa.Engine
) -> None:
    record_steps(log, 3)
    # PostgreSQL's json type refuses malformed JSON itself: there, valid JSON of the
    # wrong shape stands in for it.
    broken = "'{not json'" if engine.dialect.name == "sqlite" else "'[1, 2]'"
    tamper(engine, f"UPDATE audit_events SET details = {broken} WHERE seq = 2")
    result = log.verify()
    assert (result.intact, result.broken_seq) == (False, 2)
    assert [e.seq for e in log.tail(3)] == [1, 2, 3]


def test_verify_streams_a_long_log(log: SqlAuditLog, engine: sa.Engine) -> None:
    rows = []
    prev = GENESIS_HASH
    for seq in range(1, 2501):
        event = next_event(
            AuditEntry("system", "test.bulk", f"thing:{seq}", {"seq": seq}),
            seq=seq,
            prev_hash=prev,
            at=T0 + timedelta(seconds=seq),
        )
        rows.append(event.__dict__)
        prev = event.hash
    with engine.begin() as conn:
        conn.execute(sa.insert(audit_events), rows)
    assert log.verify().intact
    assert log.verify().events == 2500
    tamper(engine, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 1700")
    result = log.verify()
    assert (result.intact, result.broken_seq, result.events) == (False, 1700, 1699)


def test_concurrent_appends_never_fork_the_chain(database_url: str) -> None:
    writers, each = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(writers)

    def write(worker: int) -> None:
        try:
            with open_control_plane(database_url) as plane:
                start.wait()
                for i in range(each):
                    plane.audit.record(f"worker{worker}", "test.concurrent", f"n:{i}", {"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with open_control_plane(database_url) as plane:
        result = plane.audit.verify()
        assert result.intact
        assert result.events == writers * each
        assert [e.seq for e in plane.audit.events()] == list(range(1, writers * each + 1))


def test_cli_verify_intact(home: Home) -> None:
    with open_control_plane(home.database_url) as plane:
        record_steps(plane.audit, 3)
    code, out, _ = run("audit", "verify", "--home", str(home.root))
    assert code == 0
    assert out.splitlines()[0] == "audit chain intact: 3 events"


def test_cli_verify_empty_log(home: Home) -> None:
    code, out, _ = run("audit", "verify", "--home", str(home.root))
    assert (code, out.splitlines()[0]) == (0, "audit chain intact: 0 events")


def test_cli_verify_names_the_first_broken_link(home: Home) -> None:
    with open_control_plane(home.database_url) as plane:
        record_steps(plane.audit, 6)
        tamper(plane.engine, "UPDATE audit_events SET details = '{\"i\": 0}' WHERE seq = 5")
        with plane.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM audit_events WHERE seq = 3")
    code, _, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert err.splitlines()[0] == (
        "audit chain broken at event 3: event 3 is missing (deleted or moved): "
        "the next event found is 4"
    )


def test_cli_log_lists_the_newest_events(home: Home) -> None:
    with open_control_plane(home.database_url) as plane:
        record_steps(plane.audit, 4)
    code, out, _ = run("audit", "log", "--home", str(home.root), "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["3", "4"]
    assert lines[1].split()[2:5] == ["system", "test.step", "thing:4"]
    assert lines[1].endswith('{"i":4}')


def test_cli_log_on_an_empty_log(home: Home) -> None:
    code, out, _ = run("audit", "log", "--home", str(home.root))
    assert (code, out.strip()) == (0, "no audit events")


def test_cli_refuses_a_directory_that_is_not_a_home(tmp_path: Path) -> None:
    code, _, err = run("audit", "verify", "--home", str(tmp_path))
    assert code == 2
    assert "is not an sde home" in err


def test_init_records_who_created_the_home_as_the_first_event(tmp_path: Path) -> None:
    root = tmp_path / "home"
    result = CliRunner().invoke(main, ["init", "--actor", "ops-lead", "--home", str(root)])
    assert result.exit_code == 0, result.output
    key = (root / "keys" / "master.key").read_bytes()
    with open_control_plane(f"sqlite:///{root / 'control.db'}") as plane:
        events = plane.audit.events()
    assert [(e.seq, e.actor, e.action, e.subject) for e in events] == [
        (1, "ops-lead", "home.created", "home:home")
    ]
    assert events[0].details == {"lake": "local", "database": "sqlite"}
    assert key.hex()[:16] not in repr(events[0])
    verified = CliRunner().invoke(main, ["audit", "verify", "--home", str(root)])
    assert verified.exit_code == 0, verified.output
