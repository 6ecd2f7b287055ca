"""`sde project apply/publish/comment/suspend...`, `sde board ...`, `sde person ban`,
`sde org ...` end to end over a real control database and the embedded policy engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sde.adapters.sql import open_control_plane
from sde.cli import main
from sde.domain.projects import ProjectStatus
from sde.services.home import Home, Settings, init_home

pytestmark = [pytest.mark.sql, pytest.mark.policy]

APPLICATION = """\
id: diabetes-1
title: Diabetes outcomes
summary: How outcomes of type 2 diabetes differ by age.
purpose: research
uses: [health_research]
sponsor: Acme Pharma
sponsor_type: commercial
legal_basis_type: s251_support
public_benefit: Better diabetes care.
benefit_sharing: Royalties return to the NHS.
start_date: 2025-01-01
end_date: 2099-12-31
processors: [Acme Analytics]
datasets:
  gp_events:
    justification: diabetes care is recorded in primary care
    columns:
      event_date: to order events in time
      snomed_code: to find diabetes care
"""


def make_home(tmp_path: Path, days: int) -> Home:
    return init_home(tmp_path / "h", Settings(extra={"comment_period_days": days}))


def sde(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [*args, "--home", str(home.root)])
    return result.exit_code, result.stdout, result.stderr


def ok(home: Home, *args: str) -> str:
    code, out, err = sde(home, *args)
    assert code == 0, err
    return out


def refused(home: Home, *args: str) -> str:
    code, _, err = sde(home, *args)
    assert code == 2
    return err


def setup(home: Home, tmp_path: Path) -> None:
    ok(
        home,
        "person",
        "add",
        "olu",
        "--role",
        "operator",
        "--organisation",
        "NHSE",
        "--actor",
        "olu",
    )
    for kind in ("lay", "clinical", "data_protection"):
        ok(
            home,
            "person",
            "add",
            f"b-{kind}",
            "--role",
            "board_member",
            "--organisation",
            "Board",
            "--board-kind",
            kind,
            "--actor",
            "olu",
        )
    file = tmp_path / "application.yaml"
    file.write_text(APPLICATION)
    out = ok(home, "project", "apply", str(file), "--actor", "olu")
    assert out.strip() == "created application diabetes-1 (draft)"


def test_board_decides_and_the_kill_switch_works(tmp_path: Path) -> None:
    home = make_home(tmp_path, 0)
    setup(home, tmp_path)
    assert "published diabetes-1 for comment until" in ok(
        home, "project", "publish", "diabetes-1", "--actor", "olu"
    )
    ok(home, "board", "conflict", "diabetes-1", "b-lay", "--interest", "I hold Acme shares")
    for kind in ("lay", "clinical", "data_protection"):
        out = ok(
            home, "board", "vote", "diabetes-1", "approve", "--by", f"b-{kind}", "--reason", "ok"
        )
        assert out.strip() == f"b-{kind} voted to approve diabetes-1"
    shown = ok(home, "board", "show", "diabetes-1", "--actor", "b-clinical")
    assert "b-lay (lay): approve -- does not count: declared" in shown
    assert "b-clinical (clinical): approve -- counts" in shown
    assert "  - no lay (patient or public) member cast a counted vote" in shown
    err = refused(home, "board", "decide", "diabetes-1", "--by", "olu")
    assert "2 counted votes; the quorum needs at least 3" in err

    ok(
        home,
        "person",
        "add",
        "lay-2",
        "--role",
        "board_member",
        "--organisation",
        "Patients",
        "--board-kind",
        "lay",
        "--actor",
        "olu",
    )
    ok(home, "board", "vote", "diabetes-1", "approve", "--by", "lay-2", "--reason", "good")
    assert "policy sde.project: the board may approve" in ok(
        home, "board", "show", "diabetes-1", "--actor", "lay-2"
    )
    out = ok(home, "project", "approve", "diabetes-1", "--by", "olu")
    assert out.strip() == "approved project diabetes-1 (by olu)"
    shown = ok(home, "project", "show", "diabetes-1")
    assert "status:                   approved" in shown
    assert "    snomed_code: to find diabetes care" in shown
    assert "data processors:          Acme Analytics" in shown

    err = refused(home, "project", "suspend", "diabetes-1", "--reason", "x", "--actor", "b-nobody")
    assert "no person 'b-nobody'" in err
    out = ok(home, "project", "suspend", "diabetes-1", "--reason", "misuse", "--actor", "olu")
    assert out.strip() == "suspended project diabetes-1"
    ok(home, "project", "resume", "diabetes-1", "--reason", "cleared", "--actor", "olu")
    ok(home, "project", "close", "diabetes-1", "--reason", "finished", "--actor", "olu")
    with open_control_plane(home.database_url) as plane:
        project = plane.get_project("diabetes-1")
        assert (project.status, project.status_reason) == (ProjectStatus.CLOSED, "finished")
        events = plane.audit.events()
        assert plane.audit.verify().intact
    decisions = [e for e in events if e.action == "policy.decision"]
    # board show (twice), the refused and the allowed decision: each policy decision recorded
    assert [e.details["package"] for e in decisions] == ["sde.project"] * 4
    # ... as asked by the person who asked (--actor for show, --by for decide/approve)
    assert [(e.actor, e.details["allow"]) for e in decisions] == [
        ("b-clinical", False),
        ("olu", False),
        ("lay-2", True),
        ("olu", True),
    ]
    actions = [e.action for e in events if e.action != "policy.decision"]
    assert actions[-10:] == [
        "board.conflict_declared",
        "board.voted",
        "board.voted",
        "board.voted",
        "person.added",
        "board.voted",
        "project.approved",
        "project.suspended",
        "project.resumed",
        "project.closed",
    ]


def test_comments_votes_wait_and_rejections(tmp_path: Path) -> None:
    home = make_home(tmp_path, 28)
    setup(home, tmp_path)
    err = refused(home, "project", "comment", "diabetes-1", "--text", "too early")
    assert "not open for public comment" in err
    ok(home, "project", "publish", "diabetes-1", "--actor", "olu")
    assert ok(
        home, "project", "comment", "diabetes-1", "--text", "Publish the results"
    ).strip() == ("comment 1 kept with diabetes-1")
    ok(home, "project", "comment", "diabetes-1", "--text", "Who profits?", "--name", "A patient")
    listing = ok(home, "project", "comments", "diabetes-1").splitlines()
    assert [line.split(" ", 2)[2] for line in listing] == [
        "anonymous: Publish the results",
        "A patient: Who profits?",
    ]
    err = refused(home, "board", "vote", "diabetes-1", "approve", "--by", "b-lay", "--reason", "x")
    assert "the board votes after" in err
    err = refused(home, "board", "reject", "diabetes-1", "--by", "b-lay", "--reason", " ")
    assert "at least one reason" in err
    ok(
        home,
        "board",
        "reject",
        "diabetes-1",
        "--by",
        "b-lay",
        "--reason",
        "not in the public interest",
    )
    assert "decision reasons:         not in the public interest" in ok(
        home, "project", "show", "diabetes-1"
    )


def test_bans_from_the_command_line(tmp_path: Path) -> None:
    home = make_home(tmp_path, 28)
    setup(home, tmp_path)
    out = ok(
        home, "person", "ban", "b-lay", "--until", "2099-01-31", "--reason", "x", "--actor", "olu"
    )
    assert out.strip() == "banned b-lay until 2099-01-31T23:59:59+00:00"
    assert "2099-01-31T23:59:59+00:00" in ok(home, "person", "list")
    err = refused(
        home, "person", "ban", "olu", "--until", "2099-01-31", "--reason", "x", "--actor", "olu"
    )
    assert "nobody bans themselves" in err
    ok(home, "person", "unban", "b-lay", "--actor", "olu")
    err = refused(home, "person", "unban", "b-lay", "--actor", "olu")
    assert "b-lay is not banned" in err
    ok(
        home,
        "org",
        "ban",
        "  acme   PHARMA",
        "--until",
        "2099-01-31",
        "--reason",
        "breach",
        "--actor",
        "olu",
    )
    bans = ok(home, "org", "bans").splitlines()
    assert bans[1].split()[:3] == ["acme", "PHARMA", "2099-01-31T23:59:59+00:00"]
    ok(home, "org", "unban", "Acme Pharma", "--actor", "olu")
    assert ok(home, "org", "bans").strip() == "no organisation bans"
