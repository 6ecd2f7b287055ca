"""The `sde` command end to end, as an operator, a researcher and checkers use it:
real subprocesses of the installed console script over a fresh state directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SDE = str(Path(sys.executable).parent / "sde")
REPO = Path(__file__).resolve().parents[2]


def run(
    *args: str, home: Path | None = None, actor: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [SDE, *args]
    if home is not None:
        argv += ["--home", str(home)]
    if actor is not None:
        argv += ["--actor", actor]
    env = {
        k: v for k, v in os.environ.items() if k not in ("SDE_HOME", "SDE_USER", "SDE_MASTER_KEY")
    }
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


def ok(*args: str, home: Path | None = None, actor: str | None = None) -> str:
    result = run(*args, home=home, actor=actor)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_succeeds_and_says_so(tmp_path: Path) -> None:
    result = run("demo", home=tmp_path / "demo")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "every stage did what it should" in out
    assert "blocked despite two approvals" in out
    assert "min_cell_count" in out
    assert "audit chain intact" in out
    released = list((tmp_path / "demo" / "lake" / "egress").glob("rr-*/sde-release.json"))
    assert len(released) == 1

    # The researcher quickstart notebook runs, cell by cell, against the demo's home.
    notebook = json.loads((REPO / "notebooks" / "researcher-quickstart.ipynb").read_text())
    code = "\n\n".join(
        "".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"
    )
    script = tmp_path / "notebook.py"
    script.write_text(code + "\nprint(table.to_csv(index=False))\n")
    env = {**os.environ, "SDE_HOME": str(tmp_path / "demo"), "SDE_USER": "alice"}
    ran = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "refused: file access outside the scratch area" in ran.stdout
    assert "release check: pass" in ran.stdout  # checked in the notebook before filing
    assert re.search(r"^rr-[0-9a-f]{12} submitted$", ran.stdout, re.M)
    assert ran.stdout.strip().splitlines()[-3] == "sex,n"
    saved = tmp_path / "demo/lake/projects/diabetes-outcomes/outputs/t2dm_by_sex.csv"
    assert saved.read_text().startswith("sex,n\n")


def test_demo_refuses_an_existing_home(tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "something").write_text("x")
    result = run("demo", home=tmp_path / "used")
    assert result.returncode != 0
    assert "not empty" in result.stderr


def test_operator_researcher_checker_flow(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    assert (home / "keys" / "master.key").stat().st_mode & 0o777 == 0o600
    ok("synth", "--patients", "600", home=home)
    ingest = ok("ingest", "--all", home=home)
    assert "patients" in ingest
    again = ok("ingest", "--all", home=home)
    assert "already" in again.lower()

    ok(
        "person",
        "add",
        "bea",
        "--role",
        "board_member",
        "--organisation",
        "Lay",
        home=home,
        actor="olu",
    )
    ok(
        "person",
        "add",
        "olu",
        "--role",
        "operator",
        "--organisation",
        "NHS",
        home=home,
        actor="olu",
    )
    for checker in ("carol", "dev"):
        ok(
            "person",
            "add",
            checker,
            "--role",
            "output_checker",
            "--organisation",
            "NHS",
            home=home,
            actor="olu",
        )
    application = tmp_path / "sexes.yaml"
    application.write_text(
        "id: sexes\n"
        "title: Sex ratio\n"
        "summary: The ratio of women to men among patients.\n"
        "purpose: research\n"
        "uses: [health_research]\n"
        "sponsor: Uni\n"
        "legal_basis_type: s251_support\n"
        "public_benefit: Fairer planning of services.\n"
        "start_date: 2025-01-01\n"
        "end_date: 2099-12-31\n"
        "datasets:\n"
        "  patients:\n"
        "    columns: {sex: the ratio itself, year_of_birth: to compare age groups}\n"
    )
    ok("project", "apply", str(application), home=home, actor="olu")
    ok("project", "add-member", "sexes", "alice", home=home, actor="olu")
    refused = run("extract", "sexes", home=home, actor="olu")
    assert refused.returncode == 2
    assert "approved" in refused.stderr
    with (home / "config.yaml").open("a") as config:
        config.write("comment_period_days: 0\n")
    ok("project", "publish", "sexes", home=home, actor="olu")
    for member, kind in (("lay-1", "lay"), ("gp-1", "clinical"), ("dpo-1", "data_protection")):
        ok(
            "person",
            "add",
            member,
            "--role",
            "board_member",
            "--organisation",
            "Board",
            "--board-kind",
            kind,
            home=home,
            actor="olu",
        )
        ok("board", "vote", "sexes", "approve", "--by", member, "--reason", "sound", home=home)
    ok("project", "approve", "sexes", "--by", "bea", home=home)
    extract = ok("extract", "sexes", home=home, actor="olu")
    assert "patients:" in extract

    table = tmp_path / "sex.csv"
    table.write_text("sex,n\nF,250\nM,240\n")
    requested = ok(
        "release", "request", "sexes", str(table), "--title", "Sex", home=home, actor="alice"
    )
    request_id = requested.split(":")[0]
    assert "submitted" in requested
    own = run("release", "review", request_id, "--decision", "approve", home=home, actor="alice")
    assert own.returncode == 2
    early = run("release", "publish", request_id, home=home, actor="olu")
    assert early.returncode == 2
    assert "release" in early.stderr
    ok("release", "review", request_id, "--decision", "approve", home=home, actor="carol")
    assert f"{request_id}: released" in ok(
        "release", "review", request_id, "--decision", "approve", home=home, actor="dev"
    )
    assert (home / "lake" / "egress" / request_id / "sex.csv").read_text() == table.read_text()
    again = run("release", "publish", request_id, home=home, actor="olu")
    assert again.returncode == 2
    assert "status released, not approved" in again.stderr
    assert "intact" in ok("audit", "verify", home=home)


def test_audit_verify_finds_an_edited_event(tmp_path: Path) -> None:
    home = tmp_path / "h"
    ok("init", home=home)
    ok(
        "person",
        "add",
        "bea",
        "--role",
        "board_member",
        "--organisation",
        "Lay",
        home=home,
        actor="olu",
    )
    ok(
        "person",
        "add",
        "carol",
        "--role",
        "output_checker",
        "--organisation",
        "NHS",
        home=home,
        actor="olu",
    )
    copy = tmp_path / "tampered.db"
    shutil.copy(home / "control.db", copy)
    con = sqlite3.connect(home / "control.db")
    # The audit table refuses UPDATE by trigger; an attacker with the file drops it first.
    triggers = [r[0] for r in con.execute("select name from sqlite_master where type='trigger'")]
    for trigger in triggers:
        con.execute(f"drop trigger {trigger}")
    con.execute("update audit_events set actor = 'someone-else' where seq = 1")
    con.commit()
    con.close()
    result = run("audit", "verify", home=home)
    assert result.returncode == 1
    assert "event 1" in result.stdout + result.stderr
