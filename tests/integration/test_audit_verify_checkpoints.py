"""`sde audit verify` against published checkpoints, and the register's checkpoint history,
over a real control database: rows edited, deleted and rewritten behind the application's
back, as someone with the database file (or superuser rights) could."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sde.adapters.sql import audit_events, open_control_plane
from sde.cli import main
from sde.domain.audit import GENESIS_HASH, event_hash
from sde.errors import StateError
from sde.register import write_site
from sde.register.render import read_history
from sde.services.home import Home, Settings, init_home
from sde.services.register import build_register, manifest_reader
from sde.services.wiring import control_plane
from tests.integration.test_sql_backends import SQL_BACKENDS, home_on_backend

pytestmark = pytest.mark.sql


@pytest.fixture(params=SQL_BACKENDS)
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    with home_on_backend(request, tmp_path) as made:
        yield made


def run(*args: str) -> tuple[int, list[str], list[str]]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout.splitlines(), result.stderr.splitlines()


def record(home: Home, n: int) -> None:
    with open_control_plane(home.database_url) as plane:
        start = plane.audit.count()
        for i in range(start + 1, start + n + 1):
            plane.audit.record("system", "test.step", f"thing:{i}", {"i": i})


def build(home: Home) -> Path:
    code, out, err = run("register", "build", "--home", str(home.root))
    assert (code, err) == (0, []), err
    assert out[0].startswith("wrote the public register")
    return home.root / "register"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def tamper(home: Home, *statements: Any) -> None:
    """The append-only triggers go first, then the statements, in one transaction."""
    with open_control_plane(home.database_url) as plane, plane.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        for statement in statements:
            conn.execute(statement)


def rewrite_from(home: Home, seq: int, details: dict[str, Any]) -> None:
    """Edit event ``seq`` and recompute every hash from there on, with the chain's own
    functions: the rewritten chain verifies."""
    with open_control_plane(home.database_url) as plane:
        events = plane.audit.events()
    updates = []
    prev = events[seq - 2].hash if seq > 1 else GENESIS_HASH
    for event in events[seq - 1 :]:
        new_details = details if event.seq == seq else event.details
        digest = event_hash(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            details=new_details,
            prev_hash=prev,
        )
        updates.append(
            sa.update(audit_events)
            .where(audit_events.c.seq == event.seq)
            .values(details=new_details, prev_hash=prev, hash=digest)
        )
        prev = digest
    tamper(home, *updates)


def checkpoint_at(register: Path, seq: int) -> dict[str, Any]:
    history = json.loads((register / "checkpoints.json").read_text())["checkpoints"]
    [found] = [c for c in history if c["seq"] == seq]
    assert isinstance(found, dict)
    return found


def test_intact_log_verifies_with_the_registers_checkpoints(home: Home) -> None:
    record(home, 3)
    register = build(home)
    record(home, 2)
    build(home)
    code, out, err = run("audit", "verify", "--home", str(home.root))
    assert (code, err) == (0, [])
    source = str(register / "checkpoints.json")
    at3, at5 = checkpoint_at(register, 3), checkpoint_at(register, 5)
    assert out == [
        "audit chain intact: 5 events",
        f"head: {at5['hash']}",
        f"checkpoint ok: event 3 matches the checkpoint published {at3['published_at']} [{source}]",
        f"checkpoint ok: event 5 matches the checkpoint published {at5['published_at']} [{source}]",
        "summary: chain intact; 2 checkpoints checked, 2 match, 0 do not",
    ]


def test_register_history_is_carried_forward_and_rebuilds_identically(home: Home) -> None:
    record(home, 2)
    register = build(home)
    first = snapshot(register)
    build(home)
    assert snapshot(register) == first  # the head has not moved: nothing is appended
    record(home, 3)
    build(home)
    data = json.loads((register / "checkpoints.json").read_text())
    with open_control_plane(home.database_url) as plane:
        events = plane.audit.events()
    assert data["format"] == "sde-register/1"
    assert data["checkpoints"] == [
        {"seq": 2, "hash": events[1].hash, "published_at": events[1].at},
        {"seq": 5, "hash": events[4].hash, "published_at": events[4].at},
    ]
    assert data["checkpoint"]["head_seq"] == 5
    rows = list(csv.DictReader(io.StringIO((register / "checkpoints.csv").read_text())))
    assert [(r["seq"], r["hash"]) for r in rows] == [("2", events[1].hash), ("5", events[4].hash)]
    html = (register / "checkpoints.html").read_text()
    assert "<caption>Every audit checkpoint published by this register, oldest first</caption>" in (
        html
    )
    assert html.count('<th scope="row">') == 2
    assert events[1].hash in html
    assert events[4].hash in html
    assert 'href="checkpoints.html"' in (register / "index.html").read_text()


def test_edited_row_is_named_by_the_chain(home: Home) -> None:
    record(home, 4)
    build(home)
    tamper(home, sa.text("UPDATE audit_events SET subject = 'thing:x' WHERE seq = 2"))
    code, out, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert err[0] == (
        "audit chain broken at event 2: event 2 was edited: its hash does not match its content"
    )
    # The published head (event 4) is untouched: its checkpoint still holds.
    assert [line.split(":")[0] for line in out] == ["checkpoint ok"]
    assert err[-1] == "summary: chain BROKEN; 1 checkpoints checked, 1 match, 0 do not"


def test_deleted_middle_row_is_named_by_the_chain_and_the_checkpoint(home: Home) -> None:
    record(home, 3)
    register = build(home)
    record(home, 2)
    build(home)
    at3 = checkpoint_at(register, 3)
    tamper(home, sa.text("DELETE FROM audit_events WHERE seq = 3"))
    code, _, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert err[0].startswith("audit chain broken at event 3: event 3 is missing")
    assert (
        f"checkpoint FAILED: event 3 (published in checkpoint of {at3['published_at']}) is "
        "missing: it was deleted from the log, which goes on to event 5 "
        f"[{register / 'checkpoints.json'}]"
    ) in err
    assert err[-1] == "summary: chain BROKEN; 2 checkpoints checked, 1 match, 1 do not"


def test_truncation_is_caught_by_the_checkpoint_and_refused_by_the_register(home: Home) -> None:
    record(home, 5)
    register = build(home)
    before = snapshot(register)
    at5 = checkpoint_at(register, 5)
    tamper(home, sa.text("DELETE FROM audit_events WHERE seq > 3"))
    code, out, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert out == ["audit chain intact: 3 events", out[1]]  # the chain alone sees nothing
    assert err == [
        f"checkpoint FAILED: event 5 (published in checkpoint of {at5['published_at']}) is "
        f"missing: the log ends at event 3 (events deleted from the end) "
        f"[{register / 'checkpoints.json'}]",
        "summary: chain intact; 1 checkpoints checked, 0 match, 1 do not",
    ]
    code, out, err = run("register", "build", "--home", str(home.root))
    assert code == 2
    assert err[-1] == (
        f"error: event 5 (published in checkpoint of {at5['published_at']}) is missing: the "
        "log ends at event 3 (events deleted from the end). The register was not built; run "
        "`sde audit verify`"
    )
    assert snapshot(register) == before  # the published history is kept as it was


def test_consistent_rewrite_is_caught_only_by_the_checkpoint(home: Home) -> None:
    record(home, 5)
    register = build(home)
    before = snapshot(register)
    at5 = checkpoint_at(register, 5)
    rewrite_from(home, 2, {"i": 222})
    with open_control_plane(home.database_url) as plane:
        assert plane.audit.verify().intact  # the chain alone sees nothing
    code, out, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert out[0] == "audit chain intact: 5 events"
    assert err[0] == (
        f"checkpoint FAILED: event 5 does not match the checkpoint published "
        f"{at5['published_at']}: the log was rewritten at or before event 5 "
        f"[{register / 'checkpoints.json'}]"
    )
    # The register refuses to publish a head that contradicts its own history.
    code, _, err = run("register", "build", "--home", str(home.root))
    assert code == 2
    assert "event 5 does not match the checkpoint published" in err[-1]
    assert "rewritten at or before event 5" in err[-1]
    assert snapshot(register) == before


def test_build_checks_every_published_checkpoint_against_the_log(home: Home) -> None:
    """Given the previous history, the build checks each checkpoint against the log itself,
    so a rewrite followed by new events is refused too."""
    record(home, 3)
    register = build(home)
    rewrite_from(home, 1, {"i": 111})
    record(home, 2)
    with control_plane(home) as plane:
        with pytest.raises(StateError, match="event 3 does not match the checkpoint published"):
            build_register(
                plane, plane.audit, manifest_reader(home), published=read_history(register)
            )
        # Without the history, the register would publish the new head; verify still
        # catches the rewrite from the history kept in the folder.
        site = build_register(plane, plane.audit, manifest_reader(home))
    write_site(site, register)
    assert [
        c["seq"] for c in json.loads((register / "checkpoints.json").read_text())["checkpoints"]
    ] == [3, 5]
    code, _, err = run("audit", "verify", "--home", str(home.root))
    assert code == 1
    assert any("event 3 does not match" in line for line in err)


def test_saved_checkpoint_file_given_by_path(home: Home, tmp_path: Path) -> None:
    record(home, 4)
    register = build(home)
    saved = tmp_path / "my-checkpoint.json"
    shutil.copy(register / "checkpoint.json", saved)
    shutil.rmtree(register)  # the operator removes the register: the saved copy remains
    tamper(home, sa.text("DELETE FROM audit_events WHERE seq = 4"))
    code, out, err = run("audit", "verify", "--home", str(home.root), "--checkpoint", str(saved))
    assert code == 1
    assert out[0] == "audit chain intact: 3 events"
    assert err[0].startswith("checkpoint FAILED: event 4 (published in checkpoint of ")
    assert err[0].endswith(f"the log ends at event 3 (events deleted from the end) [{saved}]")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local web server over a folder: (base URL, folder)."""
    folder = tmp_path / "web"
    folder.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("home", ["sqlite"], indirect=True)
def test_checkpoints_given_by_url(home: Home, served: tuple[str, Path]) -> None:
    base, folder = served
    record(home, 3)
    register = build(home)
    shutil.copy(register / "checkpoints.json", folder / "checkpoints.json")
    url = f"{base}/checkpoints.json"
    shutil.rmtree(register)
    code, out, err = run("audit", "verify", "--home", str(home.root), "--checkpoint", url)
    assert (code, err) == (0, [])
    assert out[2].startswith("checkpoint ok: event 3 matches")
    assert out[2].endswith(f"[{url}]")

    tamper(home, sa.text("DELETE FROM audit_events WHERE seq = 3"))
    code, _, err = run("audit", "verify", "--home", str(home.root), "--checkpoint", url)
    assert code == 1
    assert "the log ends at event 2 (events deleted from the end)" in err[0]

    code, _, err = run("audit", "verify", "--home", str(home.root), "--checkpoint", f"{base}/x")
    assert code == 2
    assert err[-1] == f"error: {base}/x answered HTTP 404"
    code, _, err = run(
        "audit", "verify", "--home", str(home.root), "--checkpoint", "http://example.org/c.json"
    )
    assert code == 2
    assert "plain http is allowed on the loopback only" in err[-1]


@pytest.mark.parametrize("home", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "content", [b"not json", b'{"checkpoints": [{"seq": 1}]}', b'{"checkpoints": 3}']
)
def test_malformed_history_is_refused_not_dropped(home: Home, content: bytes) -> None:
    record(home, 2)
    register = build(home)
    (register / "checkpoints.json").write_bytes(content)
    before = snapshot(register)
    record(home, 1)
    code, _, err = run("register", "build", "--home", str(home.root))
    assert code == 2
    assert "the checkpoint history of the register in" in err[-1]
    assert "the register was not built" in err[-1]
    assert snapshot(register) == before
    code, _, err = run("audit", "verify", "--home", str(home.root))
    assert code == 2
    assert "is not a register checkpoint file" in err[-1]


@pytest.mark.parametrize("home", ["sqlite"], indirect=True)
def test_a_register_without_history_starts_it_from_its_checkpoint(home: Home) -> None:
    record(home, 2)
    register = build(home)
    for name in ("checkpoints.json", "checkpoints.csv", "checkpoints.html"):
        (register / name).unlink()  # as a register built before the history was kept
    record(home, 1)
    build(home)
    seqs = [
        c["seq"] for c in json.loads((register / "checkpoints.json").read_text())["checkpoints"]
    ]
    assert seqs == [2, 3]
    (register / "checkpoints.json").unlink()
    (register / "checkpoint.json").unlink()
    code, _, err = run("register", "build", "--home", str(home.root))
    assert code == 2
    assert "has no checkpoints.json or checkpoint.json" in err[-1]


@pytest.mark.parametrize("setting", ["published/register", "ABSOLUTE"])
def test_a_register_folder_set_in_the_config_is_built_served_and_verified(
    tmp_path: Path, setting: str
) -> None:
    """A deployment keeps the register on persistent storage (the chart sets
    ``register_folder`` on the lake's volume): build, verify and serve use it."""
    from sde.errors import ConfigError
    from sde.services.register import register_folder

    folder = tmp_path / "lake" / "register" if setting == "ABSOLUTE" else None
    value = str(folder) if folder is not None else setting
    home = init_home(tmp_path / "h", Settings(extra={"register_folder": value}))
    expected = folder if folder is not None else home.root / setting
    assert register_folder(home) == expected
    record(home, 3)
    code, out, _ = run("register", "build", "--home", str(home.root))
    assert code == 0
    assert (expected / "checkpoints.json").is_file()
    assert not (home.root / "register").exists()
    record(home, 2)
    code, out, _ = run("audit", "verify", "--home", str(home.root))
    assert code == 0
    assert any(str(expected) in line for line in out), "the configured register was not read"
    bad = init_home(tmp_path / "b", Settings(extra={"register_folder": ""}))
    with pytest.raises(ConfigError, match="register_folder"):
        register_folder(bad)
