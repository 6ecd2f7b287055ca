"""Governance over a real control database and the embedded policy engine: the board's
process, red lines, bans of people and organisations, and the kill switch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from sde.adapters.rego_embedded import RegoEmbeddedEngine, default_policy_dir
from sde.adapters.sql import ControlPlane, alembic_config, make_engine, open_control_plane, upgrade
from sde.domain.projects import ProjectStatus
from sde.domain.releases import Vote
from sde.errors import ConfigError, InputError, PolicyDenied, StateError
from sde.services import governance as governance_module
from sde.services.access import decide_access
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.projects import ProjectService
from sde.services.release import OutputFile, ReleaseService
from tests.factories import BOARD, application, approve_through_board, seat_board
from tests.integration.test_sql_backends import RUNTIME_BACKENDS, SQL_BACKENDS, fresh_database

pytestmark = [pytest.mark.sql, pytest.mark.policy]

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
COMMENT = "I am worried about my records"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def engine() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(default_policy_dir())


@pytest.fixture(params=RUNTIME_BACKENDS)
def plane(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlPlane]:
    with fresh_database(request, tmp_path) as url:
        upgrade(url)
        with open_control_plane(url) as plane:
            projects = ProjectService(plane)
            projects.add_person("olu", "olu", roles=["operator"], organisation="NHS England")
            projects.add_person("olu", "dana", roles=["board_member"], organisation="Board")
            projects.add_person("olu", "alice", roles=["researcher"], organisation="Uni")
            for checker in ("carol", "dev"):
                projects.add_person("olu", checker, roles=["output_checker"], organisation="NHS")
            yield plane


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(plane: ControlPlane, engine: RegoEmbeddedEngine, clock: Clock) -> GovernanceService:
    seat_board(plane, engine)
    return GovernanceService(plane, engine, GovernanceSettings(), clock)


def apply(plane: ControlPlane, project_id: str = "diab", **changes: object) -> None:
    ProjectService(plane).create_project(
        "olu", application(project_id, {"patients": ["sex", "year_of_birth"]}, **changes)
    )


def test_the_board_process_from_publication_to_approval(
    plane: ControlPlane, board: GovernanceService, clock: Clock
) -> None:
    apply(plane)
    published = board.publish("olu", "diab")
    assert published.status is ProjectStatus.PUBLISHED
    assert published.comment_period_ends == published.published_at + timedelta(days=28)
    kept = board.comment("diab", COMMENT, "A patient")
    assert [c.text for c in board.comments("diab")] == [COMMENT]
    assert kept.id is not None
    with pytest.raises(StateError, match="the board votes after"):
        board.vote("diab", "board-lay", "approve", "fine")
    with pytest.raises(PolicyDenied, match="comment period runs until"):
        board.decide("diab", "dana")

    clock.advance(days=28)
    with pytest.raises(StateError, match="not open for public comment"):
        board.comment("diab", "too late")
    board.declare_conflict("diab", "board-lay", "I consult for the university")
    for voter, _ in BOARD:
        board.vote("diab", voter, "approve", "in the public interest")
    with pytest.raises(StateError, match="already voted"):
        board.vote("diab", "board-clin", "reject", "changed my mind")
    with pytest.raises(PolicyDenied) as refused:
        board.decide("diab", "dana")
    assert "no lay (patient or public) member cast a counted vote" in refused.value.reasons
    assert "2 counted votes; the quorum needs at least 3" in refused.value.reasons
    view = board.board("diab")
    assert [(v.vote.voter, v.counts, v.conflicts) for v in view.votes] == [
        ("board-lay", False, ("declared",)),
        ("board-clin", True, ()),
        ("board-dpo", True, ()),
    ]
    assert plane.get_project("diab").status is ProjectStatus.PUBLISHED

    ProjectService(plane).add_person(
        "olu", "lay-2", roles=["board_member"], organisation="Patients", board_kind="lay"
    )
    board.vote("diab", "lay-2", "reject", "too broad")
    approved = board.decide("diab", "dana")
    assert (approved.status, approved.approved_by, approved.decided_by) == (
        ProjectStatus.APPROVED,
        "dana",
        "dana",
    )
    events = plane.audit.events()
    assert [e.action for e in events if e.subject == "project:diab"][-1] == "project.approved"
    everything = json.dumps([e.details for e in events])
    assert COMMENT not in everything
    assert "too broad" not in everything
    assert plane.audit.verify().intact


def test_red_line_refused_whatever_the_votes_and_rejection_kept(
    plane: ControlPlane, board: GovernanceService, clock: Clock
) -> None:
    apply(plane, uses=("health_research", "insurance_pricing"))
    board.publish("olu", "diab")
    clock.advance(days=29)
    for voter, _ in BOARD:
        board.vote("diab", voter, "approve", "fine")
    with pytest.raises(PolicyDenied) as refused:
        board.decide("diab", "dana")
    assert refused.value.reasons == ["red line: patient data may never be used for insurance"]
    with pytest.raises(InputError, match="at least one reason"):
        board.reject("diab", "dana", [])
    rejected = board.reject("diab", "dana", refused.value.reasons)
    assert rejected.status is ProjectStatus.REJECTED
    assert rejected.decision_reasons == ("red line: patient data may never be used for insurance",)
    with pytest.raises(StateError, match="only an application published"):
        board.decide("diab", "dana")


def test_commercial_terms_and_banned_sponsor(
    plane: ControlPlane, board: GovernanceService, clock: Clock
) -> None:
    apply(plane, sponsor="Acme Pharma", sponsor_type="commercial", exclusive_access=True)
    board.publish("olu", "diab")
    clock.advance(days=29)
    for voter, _ in BOARD:
        board.vote("diab", voter, "approve", "fine")
    board.ban_organisation("olu", "acme pharma", until=date(2025, 12, 31), reason="breach")
    reasons = board.evaluate("diab").reasons
    assert set(reasons) == {
        "a commercial sponsor needs benefit-sharing terms",
        "no project may have exclusive access to the data",
        "the sponsor organisation is banned",
    }


def test_approve_goes_through_the_policy(
    plane: ControlPlane, board: GovernanceService, engine: RegoEmbeddedEngine
) -> None:
    apply(plane)
    with pytest.raises(ConfigError, match=r"sde\.project policy"):
        ProjectService(plane).approve("diab", "dana")
    with pytest.raises(StateError, match="only an application published"):
        ProjectService(plane, governance=board).approve("diab", "dana")
    assert plane.get_project("diab").status is ProjectStatus.DRAFT
    approved = approve_through_board(plane, engine, "diab", decided_by="dana")
    assert approved.status is ProjectStatus.APPROVED


@pytest.fixture
def running(
    plane: ControlPlane, engine: RegoEmbeddedEngine, tmp_path: Path
) -> tuple[ReleaseService, str]:
    """An approved project with an approved release request waiting to be published."""
    apply(plane)
    ProjectService(plane).add_member("olu", "diab", "alice")
    approve_through_board(plane, engine, "diab", decided_by="dana")
    airlock = ReleaseService(
        plane, engine, egress_dir=tmp_path / "egress", min_cell_count=10, approvals_required=1
    )
    request = airlock.request(
        "diab", "alice", [OutputFile("t.csv", b"sex,n\nF,120\nM,98\n")], title="t"
    )
    return airlock, request.id


def test_kill_switch_freezes_sessions_releases_and_refreshes(
    plane: ControlPlane, engine: RegoEmbeddedEngine, running: tuple[ReleaseService, str]
) -> None:
    airlock, request_id = running
    governance = GovernanceService(plane, engine)
    stopped: list[str] = []

    def stop_sessions(project_id: str) -> None:
        stopped.append(project_id)

    def broken(project_id: str) -> None:
        raise RuntimeError("spawner down")

    def also_stop(project_id: str) -> None:
        stopped.append("again:" + project_id)

    for hook in (stop_sessions, broken, also_stop):
        governance_module.on_suspend(hook)
    try:
        with pytest.raises(PolicyDenied, match="not a board member or operator"):
            governance.suspend("alice", "diab", "misuse")
        result = governance.suspend("olu", "diab", "suspected misuse")
    finally:
        for hook in (stop_sessions, broken, also_stop):
            governance_module.remove_hook(hook)
    assert stopped == ["diab", "again:diab"]
    assert result.failed_hooks == [
        "test_kill_switch_freezes_sessions_releases_and_refreshes.<locals>.broken"
    ]
    assert result.frozen_requests == [request_id]
    assert result.project.status is ProjectStatus.SUSPENDED
    assert result.project.status_reason == "suspected misuse"

    today = datetime.now(UTC).date()
    for action in ("open_workspace", "build_extract"):
        decision = decide_access(
            plane, engine, person_id="alice", project_id="diab", action=action, today=today
        )
        assert "project diab has status suspended, not approved" in decision.reasons
    with pytest.raises(StateError, match="release requests are frozen"):
        airlock.review(request_id, "carol", Vote.APPROVE)
    document = airlock.egress_decision_input(request_id)
    assert document["request"]["project_status"] == "suspended"  # type: ignore[index]
    assert not engine.decide("sde.egress", document).allow

    governance.resume("olu", "diab", "investigated: no misuse")
    assert decide_access(
        plane, engine, person_id="alice", project_id="diab", action="open_workspace", today=today
    ).allow
    governance.close("olu", "diab", "finished")
    with pytest.raises(StateError, match="diab is closed: its release requests are frozen"):
        airlock.review(request_id, "carol", Vote.APPROVE)
    with pytest.raises(PolicyDenied, match="is closed, not approved: its releases are frozen"):
        airlock.publish(request_id, "olu")
    actions = [e.action for e in plane.audit.events() if e.subject == "project:diab"]
    assert actions[-3:] == ["project.suspended", "project.resumed", "project.closed"]


def test_bans_of_people_and_organisations_refuse_access(
    plane: ControlPlane, engine: RegoEmbeddedEngine, running: tuple[ReleaseService, str]
) -> None:
    governance = GovernanceService(plane, engine)
    today = datetime.now(UTC).date()

    def access() -> tuple[str, ...]:
        return decide_access(
            plane,
            engine,
            person_id="alice",
            project_id="diab",
            action="open_workspace",
            today=today,
        ).reasons

    banned_people: list[str] = []
    governance_module.on_ban(banned_people.append)
    try:
        assert access() == ()
        ban = governance.ban_organisation(
            "olu", " UNI ", until=today + timedelta(days=30), reason="breach"
        )
        assert ban.key == "uni"
        assert access() == (
            f"person alice is banned until {(today + timedelta(days=30)).isoformat()}",
        )
        governance.lift_organisation_ban("olu", "uni")
        assert access() == ()
        with pytest.raises(InputError, match="must end in the future"):
            governance.ban_person("olu", "alice", until=today - timedelta(days=1), reason="x")
        with pytest.raises(PolicyDenied, match="not an operator or board member"):
            governance.ban_person("carol", "alice", until=today, reason="x")
        governance.ban_person("olu", "alice", until=today, reason="shared a password")
        assert access() == (f"person alice is banned until {today.isoformat()}",)
        assert plane.get_person("alice").ban_reason == "shared a password"
        governance.lift_person_ban("olu", "alice")
        assert access() == ()
    finally:
        governance_module.remove_hook(banned_people.append)
    assert banned_people == ["alice", "alice"]


@pytest.mark.parametrize("database", SQL_BACKENDS)
def test_upgrade_from_0001_keeps_people_projects_and_their_references(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.param = database  # type: ignore[attr-defined]
    with fresh_database(request, tmp_path) as url:
        command.upgrade(alembic_config(url), "0001")
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO people (id, display_name, roles, created_at) "
                        "VALUES ('alice', 'Alice', '[\"researcher\"]', :at)"
                    ),
                    {"at": T0},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO projects (id, title, purpose, sponsor, sponsor_type, "
                        "national_opt_out_applies, status, created_at) VALUES ('p-1', 't', "
                        "'research', 's', 'academic', true, 'approved', :at)"
                    ),
                    {"at": T0},
                )
                conn.execute(
                    sa.text("INSERT INTO project_members VALUES ('p-1', 'alice', 'lead', :at)"),
                    {"at": T0},
                )
        finally:
            engine.dispose()
        upgrade(url)
        with open_control_plane(url) as plane:
            project = plane.get_project("p-1")
            assert (project.status, project.uses, project.exclusive_access) == (
                ProjectStatus.APPROVED,
                (),
                False,
            )
            assert [m.person_id for m in plane.list_members("p-1")] == ["alice"]
            assert plane.get_person("alice").board_kind is None
            with pytest.raises(StateError):
                plane.set_project_status(
                    "p-1", ProjectStatus.SUSPENDED, expected=ProjectStatus.DRAFT, audit=_entry()
                )
        bad = make_engine(url)
        try:
            with pytest.raises(sa.exc.IntegrityError), bad.begin() as conn:
                conn.execute(sa.text("UPDATE projects SET status = 'paused'"))
        finally:
            bad.dispose()


def _entry() -> object:
    from sde.domain.audit import AuditEntry

    return AuditEntry("olu", "test.write", "project:p-1")
