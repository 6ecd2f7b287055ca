"""`sde project ...` and `sde person ...` end to end over a real control database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sde.adapters.sql import open_control_plane
from sde.cli import main
from sde.domain.audit import AuditEntry
from sde.domain.projects import MemberRole, PersonRole, ProjectStatus, Purpose, SponsorType
from sde.services.home import Home
from tests.integration.test_sql_backends import RUNTIME_BACKENDS, home_on_backend

pytestmark = pytest.mark.sql


@pytest.fixture(params=RUNTIME_BACKENDS)
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Home]:
    with home_on_backend(request, tmp_path) as made:
        yield made


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


def audit_actions(home: Home) -> list[tuple[str, str, str]]:
    with open_control_plane(home.database_url) as plane:
        return [(e.actor, e.action, e.subject) for e in plane.audit.events()]


def create_project(home: Home, project_id: str = "diabetes-1", *extra: str) -> str:
    return ok(
        home,
        "project",
        "create",
        project_id,
        "--title",
        "Diabetes outcomes",
        "--purpose",
        "research",
        "--sponsor",
        "Uni of Somewhere",
        "--dataset",
        "gp_events:pid,code,event_date:codes and dates of diabetes care",
        "--dataset",
        "hes_apc:pid,admission_date",
        "--actor",
        "olive",
        *extra,
    )


def test_project_lifecycle(home: Home) -> None:
    out = ok(
        home,
        "person",
        "add",
        "dana",
        "--role",
        "board_member",
        "--organisation",
        "NHSE",
        "--actor",
        "olive",
    )
    assert out.strip() == "added person dana (board_member)"
    out = create_project(
        home,
        "diabetes-1",
        "--sponsor-type",
        "charity",
        "--legal-basis",
        "consent",
        "--start",
        "2025-01-01",
        "--end",
        "2026-06-30",
    )
    assert out.strip() == "created project diabetes-1 (draft)"
    out = ok(
        home,
        "project",
        "add-member",
        "diabetes-1",
        "alice",
        "--role",
        "lead",
        "--organisation",
        "Uni of Somewhere",
        "--accredited-until",
        "2030-01-01",
        "--actor",
        "olive",
    )
    assert out.strip() == "added alice to diabetes-1 as lead"
    # A draft is not decided: it is published for comment first (tests/integration/
    # test_governance_cli.py takes an application through the board to approval).
    err = refused(home, "project", "approve", "diabetes-1", "--by", "dana")
    assert "only an application published for comment can be decided" in err

    with open_control_plane(home.database_url) as plane:
        project = plane.get_project("diabetes-1")
        assert project.status is ProjectStatus.DRAFT
        assert (project.purpose, project.sponsor_type) == (Purpose.RESEARCH, SponsorType.CHARITY)
        assert project.legal_basis == "consent"
        assert project.national_opt_out_applies is True
        assert (project.start_date, project.end_date) == (date(2025, 1, 1), date(2026, 6, 30))
        assert project.approved_by is None
        assert project.approved_at is None
        datasets = {d.dataset: d for d in plane.list_project_datasets("diabetes-1")}
        assert datasets["gp_events"].columns == ("pid", "code", "event_date")
        assert datasets["gp_events"].justification == "codes and dates of diabetes care"
        assert datasets["hes_apc"].columns == ("pid", "admission_date")
        assert datasets["hes_apc"].justification is None
        [member] = plane.list_members("diabetes-1")
        assert (member.person_id, member.role) == ("alice", MemberRole.LEAD)
        alice = plane.get_person("alice")
        assert alice.roles == (PersonRole.RESEARCHER,)
        assert alice.organisation == "Uni of Somewhere"
        assert alice.accredited_until == date(2030, 1, 1)
        created = next(e for e in plane.audit.events() if e.action == "project.created")
        assert created.details["datasets"] == {
            "gp_events": ["pid", "code", "event_date"],
            "hes_apc": ["pid", "admission_date"],
        }
        assert plane.audit.verify().intact

    assert audit_actions(home) == [
        ("olive", "person.added", "person:dana"),
        ("olive", "project.created", "project:diabetes-1"),
        ("olive", "person.added", "person:alice"),
        ("olive", "project.member_added", "project:diabetes-1"),
    ]

    listing = ok(home, "project", "list").splitlines()
    assert listing[0].split() == ["ID", "STATUS", "PURPOSE", "SPONSOR", "TITLE"]
    assert listing[1].split()[:3] == ["diabetes-1", "draft", "research"]

    shown = ok(home, "project", "show", "diabetes-1")
    assert "status:                   draft" in shown
    assert "national opt-out applies: yes" in shown
    assert "  alice (lead, added " in shown
    assert "  gp_events: pid, code, event_date  -- codes and dates of diabetes care" in shown

    verify = ok(home, "audit", "verify")
    assert verify.splitlines()[0] == "audit chain intact: 4 events"


def test_national_opt_out_exemption_is_recorded(home: Home) -> None:
    create_project(home, "planning-1", "--no-national-opt-out")
    with open_control_plane(home.database_url) as plane:
        assert plane.get_project("planning-1").national_opt_out_applies is False
        [event] = plane.audit.events()
        assert event.details["national_opt_out_applies"] is False


def test_new_member_is_an_accredited_researcher_for_a_year(home: Home) -> None:
    create_project(home)
    ok(home, "project", "add-member", "diabetes-1", "bob")
    with open_control_plane(home.database_url) as plane:
        bob = plane.get_person("bob")
        assert bob.roles == (PersonRole.RESEARCHER,)
        assert bob.accredited_until is not None
        days = (bob.accredited_until - date.today()).days
        assert 364 <= days <= 366
        [member] = plane.list_members("diabetes-1")
        assert member.role is MemberRole.RESEARCHER


def test_people_listing(home: Home) -> None:
    assert ok(home, "person", "list").strip() == "no people"
    ok(
        home,
        "person",
        "add",
        "carol",
        "--role",
        "output_checker",
        "--role",
        "researcher",
        "--organisation",
        "SDE",
        "--accredited-until",
        "2027-05-01",
        "--name",
        "Carol C",
    )
    lines = ok(home, "person", "list").splitlines()
    assert lines[1].split() == ["carol", "researcher,output_checker", "SDE", "2027-05-01", "-"]


def test_empty_project_listing(home: Home) -> None:
    assert ok(home, "project", "list").strip() == "no projects"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (
                "project",
                "create",
                "Bad_Id",
                "--title",
                "t",
                "--purpose",
                "research",
                "--sponsor",
                "s",
            ),
            "project id 'Bad_Id'",
        ),
        (
            (
                "project",
                "create",
                "p-1",
                "--title",
                "t",
                "--purpose",
                "research",
                "--sponsor",
                "s",
                "--dataset",
                "gp",
            ),
            "NAME:col1,col2",
        ),
        (
            (
                "project",
                "create",
                "p-1",
                "--title",
                "t",
                "--purpose",
                "research",
                "--sponsor",
                "s",
                "--start",
                "2025-01-01",
            ),
            "both a start and an end",
        ),
        (("project", "show", "nope"), "no project 'nope'"),
        (("project", "approve", "nope", "--by", "dana"), "no project 'nope'"),
        (("project", "add-member", "nope", "bob"), "no project 'nope'"),
        (("person", "add", "Bob!", "--role", "researcher", "--organisation", "x"), "person id"),
    ],
)
def test_refusals_are_one_line_and_leave_no_trace(
    home: Home, args: tuple[str, ...], message: str
) -> None:
    err = refused(home, *args)
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err
    assert audit_actions(home) == []


def test_duplicate_project_is_refused_without_an_audit_event(home: Home) -> None:
    create_project(home)
    err = refused(
        home,
        "project",
        "create",
        "diabetes-1",
        "--title",
        "again",
        "--purpose",
        "planning",
        "--sponsor",
        "s",
    )
    assert "project 'diabetes-1' already exists" in err
    assert [a for _, a, _ in audit_actions(home)] == ["project.created"]
    with open_control_plane(home.database_url) as plane:
        assert plane.get_project("diabetes-1").title == "Diabetes outcomes"


def test_approval_rules(home: Home) -> None:
    create_project(home)
    ok(home, "project", "add-member", "diabetes-1", "alice")
    ok(
        home,
        "person",
        "add",
        "odin",
        "--role",
        "operator",
        "--role",
        "researcher",
        "--organisation",
        "SDE",
    )
    ok(home, "project", "add-member", "diabetes-1", "odin")
    err = refused(home, "project", "approve", "diabetes-1", "--by", "alice")
    assert "only an application published for comment can be decided" in err
    with open_control_plane(home.database_url) as plane:
        # Published directly: the approver rules are checked before the policy is asked.
        plane.publish_project(
            "diabetes-1",
            published_at=datetime.now(UTC),
            comment_period_ends=datetime.now(UTC) + timedelta(days=28),
            audit=AuditEntry("olive", "project.published", "project:diabetes-1"),
        )
    err = refused(home, "project", "approve", "diabetes-1", "--by", "alice")
    assert "alice is not a board member or operator" in err
    err = refused(home, "project", "approve", "diabetes-1", "--by", "odin")
    assert "odin is a member of project diabetes-1" in err
    err = refused(home, "project", "approve", "diabetes-1", "--by", "ghost")
    assert "no person 'ghost'" in err
    ok(home, "person", "add", "dana", "--role", "board_member", "--organisation", "NHSE")
    err = refused(home, "project", "approve", "diabetes-1", "--by", "dana")
    assert "approve project diabetes-1 refused" in err
    assert "the public comment period runs until" in err
    assert "0 counted votes; the quorum needs at least 3" in err
    assert [a for _, a, _ in audit_actions(home)].count("project.approved") == 0


def test_member_rules(home: Home) -> None:
    create_project(home)
    ok(home, "person", "add", "carol", "--role", "output_checker", "--organisation", "SDE")
    err = refused(home, "project", "add-member", "diabetes-1", "carol")
    assert "carol is not a researcher" in err
    err = refused(
        home, "project", "add-member", "diabetes-1", "lapsed", "--accredited-until", "2000-01-01"
    )
    assert "lapsed is not accredited" in err
    with open_control_plane(home.database_url) as plane:
        assert [p.id for p in plane.list_people()] == ["carol"]  # the refused one not recorded
    ok(home, "project", "add-member", "diabetes-1", "bob", "--organisation", "Uni")
    err = refused(home, "project", "add-member", "diabetes-1", "bob")
    assert "already a member" in err
    err = refused(home, "project", "add-member", "diabetes-1", "bob", "--organisation", "Other")
    assert "already exists with another organisation" in err
    err = refused(home, "project", "add-member", "diabetes-1", "bob", "--role", "boss")
    assert "Invalid value for '--role'" in err


def test_duplicate_person_is_refused(home: Home) -> None:
    ok(home, "person", "add", "dana", "--role", "board_member", "--organisation", "NHSE")
    err = refused(home, "person", "add", "dana", "--role", "operator", "--organisation", "x")
    assert "person 'dana' already exists" in err
    assert len(audit_actions(home)) == 1
