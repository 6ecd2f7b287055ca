"""The control plane adapter: every write carries its audit event in one transaction.

The meta-tests find the public methods of ``ControlPlane`` by introspection and call each
one on a seeded database (``CALLS`` says how; a new method fails until it is listed):

- a method that changes anything must take ``audit`` and append exactly that event;
- a method without ``audit`` must change nothing at all;
- if the audit append fails, the change is rolled back with it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import sde.adapters.sql as sql
from sde.adapters.sql import ControlPlane, open_control_plane, upgrade
from sde.domain.audit import AuditEntry
from sde.domain.governance import (
    BoardVote,
    BoardVoteDecision,
    ConflictOfInterest,
    OrganisationBan,
    PublicComment,
)
from sde.domain.projects import (
    ApprovedDataset,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    ReleaseRequest,
    Review,
    SponsorType,
)
from sde.domain.releases import Status, Vote
from sde.errors import NotFound, StateError
from tests.integration.test_sql_backends import RUNTIME_BACKENDS, fresh_database

pytestmark = pytest.mark.sql

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
REQUEST_ID = "rr-0123456789ab"
CSV = b"group,count\na,15\nb,22\n"


def person(person_id: str, *roles: PersonRole) -> Person:
    return Person(
        id=person_id,
        display_name=person_id.title(),
        organisation="Uni",
        roles=roles or (PersonRole.RESEARCHER,),
        accredited_until=date(2026, 3, 1),
        created_at=T0,
    )


def project(project_id: str = "diabetes-1") -> Project:
    return Project(
        id=project_id,
        title="Diabetes outcomes",
        purpose=Purpose.RESEARCH,
        sponsor="Uni",
        sponsor_type=SponsorType.ACADEMIC,
        legal_basis="consent",
        national_opt_out_applies=True,
        status=ProjectStatus.DRAFT,
        start_date=date(2025, 1, 1),
        end_date=date(2026, 1, 1),
        created_at=T0,
    )


def entry(action: str = "test.write", subject: str = "thing:1") -> AuditEntry:
    return AuditEntry("operator", action, subject, {"n": 1})


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=RUNTIME_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def plane(database_url: str) -> Iterator[ControlPlane]:
    with open_control_plane(database_url, clock=Clock()) as plane:
        yield plane


def seed(plane: ControlPlane) -> None:
    """Something of everything, written through the adapter itself."""
    for pid, roles in [
        ("alice", (PersonRole.RESEARCHER,)),
        ("bob", (PersonRole.RESEARCHER,)),
        ("carol", (PersonRole.OUTPUT_CHECKER,)),
        ("dan", (PersonRole.OUTPUT_CHECKER,)),
        ("dana", (PersonRole.BOARD_MEMBER,)),
    ]:
        plane.add_person(person(pid, *roles), audit=entry("person.added"))
    plane.create_project(
        project(),
        [ApprovedDataset("diabetes-1", "gp_events", ("pid", "code"), "codes")],
        audit=entry("project.created"),
    )
    plane.add_member(
        Member("diabetes-1", "alice", MemberRole.LEAD, T0), audit=entry("project.member_added")
    )
    plane.create_release_request(
        ReleaseRequest(REQUEST_ID, "diabetes-1", "alice", Status.DRAFT, "Table 1", None, T0, T0),
        audit=entry("release.created"),
    )
    plane.put_release_file(
        REQUEST_ID, "table1.csv", CSV, kind="table", audit=entry("release.file_added")
    )
    plane.add_review(
        Review(REQUEST_ID, "carol", Vote.APPROVE, "fine", T0), audit=entry("release.reviewed")
    )
    plane.create_project(project("published-1"), audit=entry("project.created"))
    plane.publish_project(
        "published-1",
        published_at=T0,
        comment_period_ends=T0 + timedelta(days=28),
        audit=entry("project.published"),
    )
    plane.add_public_comment(
        PublicComment("published-1", None, None, "a comment", T0), audit=entry("project.comment")
    )
    plane.declare_conflict(
        ConflictOfInterest("published-1", "dana", "consults for the sponsor", T0),
        audit=entry("board.conflict"),
    )
    plane.ban_organisation(
        OrganisationBan("acme ltd", "Acme Ltd", T0 + timedelta(days=90), "breach", T0, "op"),
        audit=entry("organisation.banned"),
    )


AUDIT = entry("meta.write", "thing:meta")

# How to call each public method of ControlPlane on the seeded database. Writes pass
# AUDIT; the meta-tests decide from what happens whether the method wrote.
CALLS: dict[str, Callable[[ControlPlane], Any]] = {
    "close": lambda p: p.close(),
    "record_sign_in_attempt": lambda p: p.record_sign_in_attempt(
        ["patient:0123456789abcdef"], "failure", T0, audit=AUDIT
    ),
    "sign_in_failures": lambda p: p.sign_in_failures("patient:0123456789abcdef", T0),
    "get_person": lambda p: p.get_person("alice"),
    "list_people": lambda p: p.list_people(),
    "add_person": lambda p: p.add_person(person("erin"), audit=AUDIT),
    "update_person": lambda p: p.update_person(
        person("bob", PersonRole.RESEARCHER, PersonRole.OPERATOR), audit=AUDIT
    ),
    "get_project": lambda p: p.get_project("diabetes-1"),
    "list_projects": lambda p: p.list_projects(),
    "create_project": lambda p: p.create_project(project("other-1"), audit=AUDIT),
    "set_project_status": lambda p: p.set_project_status(
        "diabetes-1", ProjectStatus.SUSPENDED, audit=AUDIT
    ),
    "record_project_approval": lambda p: p.record_project_approval(
        "diabetes-1", approved_by="dana", approved_at=T0, audit=AUDIT
    ),
    "list_members": lambda p: p.list_members("diabetes-1"),
    "list_memberships": lambda p: p.list_memberships("alice"),
    "add_member": lambda p: p.add_member(
        Member("diabetes-1", "bob", MemberRole.RESEARCHER, T0), audit=AUDIT
    ),
    "remove_member": lambda p: p.remove_member("diabetes-1", "alice", audit=AUDIT),
    "list_project_datasets": lambda p: p.list_project_datasets("diabetes-1"),
    "set_project_dataset": lambda p: p.set_project_dataset(
        ApprovedDataset("diabetes-1", "hes", ("pid",)), audit=AUDIT
    ),
    "remove_project_dataset": lambda p: p.remove_project_dataset(
        "diabetes-1", "gp_events", audit=AUDIT
    ),
    "get_release_request": lambda p: p.get_release_request(REQUEST_ID),
    "list_release_requests": lambda p: p.list_release_requests(),
    "create_release_request": lambda p: p.create_release_request(
        ReleaseRequest("rr-ffffffffffff", "diabetes-1", "alice", Status.DRAFT, "t", None, T0, T0),
        audit=AUDIT,
    ),
    "set_release_status": lambda p: p.set_release_status(REQUEST_ID, Status.SUBMITTED, audit=AUDIT),
    "list_release_files": lambda p: p.list_release_files(REQUEST_ID),
    "get_release_file_content": lambda p: p.get_release_file_content(REQUEST_ID, "table1.csv"),
    "put_release_file": lambda p: p.put_release_file(
        REQUEST_ID, "table2.csv", b"x,1\n", kind="table", audit=AUDIT
    ),
    "delete_release_file": lambda p: p.delete_release_file(REQUEST_ID, "table1.csv", audit=AUDIT),
    "list_reviews": lambda p: p.list_reviews(REQUEST_ID),
    "add_review": lambda p: p.add_review(
        Review(REQUEST_ID, "dan", Vote.RETURN, None, T0), audit=AUDIT
    ),
    "clear_reviews": lambda p: p.clear_reviews(REQUEST_ID, audit=AUDIT),
    "update_application": lambda p: p.update_application(
        replace(project(), summary="A plain summary"),
        [ApprovedDataset("diabetes-1", "hes", ("pid",), None, {"pid": "to link"})],
        audit=AUDIT,
    ),
    "publish_project": lambda p: p.publish_project(
        "diabetes-1", published_at=T0, comment_period_ends=T0, audit=AUDIT
    ),
    "record_project_decision": lambda p: p.record_project_decision(
        "published-1",
        ProjectStatus.REJECTED,
        decided_by="dana",
        decided_at=T0,
        reasons=["red line"],
        audit=AUDIT,
    ),
    "list_public_comments": lambda p: p.list_public_comments("published-1"),
    "add_public_comment": lambda p: p.add_public_comment(
        PublicComment("published-1", None, "A patient", "Please publish results", T0),
        audit=AUDIT,
    ),
    "list_conflicts": lambda p: p.list_conflicts("published-1"),
    "declare_conflict": lambda p: p.declare_conflict(
        ConflictOfInterest("published-1", "alice", "works for the sponsor", T0), audit=AUDIT
    ),
    "list_board_votes": lambda p: p.list_board_votes("published-1"),
    "cast_board_vote": lambda p: p.cast_board_vote(
        BoardVote("published-1", "dana", BoardVoteDecision.APPROVE, "sound", T0), audit=AUDIT
    ),
    "list_organisation_bans": lambda p: p.list_organisation_bans(),
    "get_organisation_ban": lambda p: p.get_organisation_ban("ACME  ltd"),
    "ban_organisation": lambda p: p.ban_organisation(
        OrganisationBan("globex", "Globex", T0 + timedelta(days=9), "breach", T0, "op"),
        audit=AUDIT,
    ),
    "lift_organisation_ban": lambda p: p.lift_organisation_ban("acme ltd", audit=AUDIT),
}


def public_methods() -> list[str]:
    return sorted(
        name
        for name, _ in inspect.getmembers(ControlPlane, inspect.isfunction)
        if not name.startswith("_")
    )


def takes_audit(name: str) -> bool:
    return "audit" in inspect.signature(getattr(ControlPlane, name)).parameters


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every control-plane table except the audit log."""
    engine = sql.make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table.name: [
                    tuple(row)
                    for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns))
                ]
                for table in sql.metadata.sorted_tables
                if table.name != "audit_events"
            }
    finally:
        engine.dispose()


def test_every_public_method_is_covered() -> None:
    assert set(CALLS) == set(public_methods()), (
        "add the new ControlPlane methods to CALLS so the meta-tests exercise them"
    )


@pytest.mark.parametrize("name", public_methods())
def test_writes_append_their_audit_event_and_reads_change_nothing(
    name: str, plane: ControlPlane, database_url: str
) -> None:
    seed(plane)
    before, events_before = snapshot(database_url), plane.audit.count()
    CALLS[name](plane)
    after, events_after = snapshot(database_url), plane.audit.count()
    if takes_audit(name):
        assert after != before, f"{name} takes an audit event but changed nothing"
        assert events_after == events_before + 1, f"{name} must append exactly one event"
        last = plane.audit.tail(1)[0]
        assert (last.actor, last.action, last.subject) == (
            AUDIT.actor,
            AUDIT.action,
            AUDIT.subject,
        )
    else:
        assert after == before, f"{name} changed the control plane without an audit event"
        assert events_after == events_before, f"{name} appended an event but takes none"
    assert plane.audit.verify().intact


@pytest.mark.parametrize("name", [n for n in public_methods() if takes_audit(n)])
def test_a_failed_audit_append_rolls_the_write_back(
    name: str, plane: ControlPlane, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(plane)
    before, events_before = snapshot(database_url), plane.audit.count()

    def broken_append(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(sql, "_append_event", broken_append)
    with pytest.raises(RuntimeError, match="audit store unavailable"):
        CALLS[name](plane)
    assert snapshot(database_url) == before
    assert plane.audit.count() == events_before


def test_duplicate_key_writes_nothing_and_audits_nothing(
    plane: ControlPlane, database_url: str
) -> None:
    seed(plane)
    before, events_before = snapshot(database_url), plane.audit.count()
    with pytest.raises(StateError, match="project 'diabetes-1' already exists"):
        plane.create_project(
            project(),
            [ApprovedDataset("diabetes-1", "hes", ("pid",))],
            audit=entry("project.created"),
        )
    with pytest.raises(StateError, match="already reviewed"):
        plane.add_review(
            Review(REQUEST_ID, "carol", Vote.REJECT, None, T0), audit=entry("release.reviewed")
        )
    assert snapshot(database_url) == before
    assert plane.audit.count() == events_before


def test_missing_rows_are_not_found_and_not_audited(plane: ControlPlane) -> None:
    seed(plane)
    events = plane.audit.count()
    with pytest.raises(NotFound, match="no project 'nope'"):
        plane.set_project_status("nope", ProjectStatus.CLOSED, audit=entry())
    with pytest.raises(NotFound):
        plane.update_person(person("nobody"), audit=entry())
    with pytest.raises(NotFound):
        plane.get_person("nobody")
    with pytest.raises(NotFound):
        plane.get_release_file_content(REQUEST_ID, "missing.csv")
    assert plane.audit.count() == events


def test_unknown_people_cannot_be_referenced(plane: ControlPlane) -> None:
    seed(plane)
    with pytest.raises(StateError, match="does not exist"):
        plane.add_member(Member("diabetes-1", "ghost", MemberRole.RESEARCHER, T0), audit=entry())
    with pytest.raises(StateError, match="not a known person"):
        plane.record_project_approval(
            "diabetes-1", approved_by="ghost", approved_at=T0, audit=entry()
        )
    assert plane.get_project("diabetes-1").status is ProjectStatus.DRAFT


def test_reads_round_trip(plane: ControlPlane) -> None:
    seed(plane)
    assert plane.get_person("carol") == person("carol", PersonRole.OUTPUT_CHECKER)
    assert [p.id for p in plane.list_people()] == ["alice", "bob", "carol", "dan", "dana"]
    assert plane.get_project("diabetes-1") == project()
    assert plane.list_members("diabetes-1") == [Member("diabetes-1", "alice", MemberRole.LEAD, T0)]
    assert plane.list_memberships("alice") == plane.list_members("diabetes-1")
    assert plane.list_project_datasets("diabetes-1") == [
        ApprovedDataset("diabetes-1", "gp_events", ("pid", "code"), "codes")
    ]
    request = plane.get_release_request(REQUEST_ID)
    assert (request.status, request.author, request.project_id) == (
        Status.DRAFT,
        "alice",
        "diabetes-1",
    )
    assert plane.list_release_requests(project_id="diabetes-1") == [request]
    assert plane.list_release_requests(status=Status.RELEASED) == []
    [file] = plane.list_release_files(REQUEST_ID)
    assert (file.name, file.size_bytes, file.kind) == ("table1.csv", len(CSV), "table")
    assert plane.get_release_file_content(REQUEST_ID, "table1.csv") == CSV
    assert plane.list_reviews(REQUEST_ID) == [Review(REQUEST_ID, "carol", Vote.APPROVE, "fine", T0)]


def test_approval_records_who_and_when(plane: ControlPlane) -> None:
    seed(plane)
    plane.record_project_approval(
        "diabetes-1", approved_by="dana", approved_at=T0 + timedelta(days=1), audit=entry()
    )
    approved = plane.get_project("diabetes-1")
    assert approved.status is ProjectStatus.APPROVED
    assert approved.approved_by == "dana"
    assert approved.approved_at == T0 + timedelta(days=1)


def test_replacing_a_file_resets_reviews_and_updates_checksum(plane: ControlPlane) -> None:
    seed(plane)
    assert len(plane.list_reviews(REQUEST_ID)) == 1
    updated_before = plane.get_release_request(REQUEST_ID).updated_at
    new = b"group,count\na,16\n"
    record = plane.put_release_file(
        REQUEST_ID,
        "table1.csv",
        new,
        kind="table",
        checks=[{"check": "min_cell_count", "passed": True}],
        metadata={"rows": 1},
        audit=entry("release.file_replaced"),
    )
    assert plane.list_reviews(REQUEST_ID) == []
    [stored] = plane.list_release_files(REQUEST_ID)
    assert stored == record
    assert stored.sha256 == __import__("hashlib").sha256(new).hexdigest()
    assert stored.checks == [{"check": "min_cell_count", "passed": True}]
    assert stored.metadata == {"rows": 1}
    assert plane.get_release_file_content(REQUEST_ID, "table1.csv") == new
    assert plane.get_release_request(REQUEST_ID).updated_at > updated_before


def test_file_content_is_checked_against_its_checksum(
    plane: ControlPlane, database_url: str
) -> None:
    seed(plane)
    with plane.engine.begin() as conn:
        conn.execute(sa.update(sql.release_files).values(content=b"group,count\na,1\n"))
    with pytest.raises(StateError, match="does not match its checksum"):
        plane.get_release_file_content(REQUEST_ID, "table1.csv")


def test_release_status_and_release_time(plane: ControlPlane) -> None:
    seed(plane)
    plane.set_release_status(REQUEST_ID, Status.RELEASED, released_at=T0, audit=entry())
    request = plane.get_release_request(REQUEST_ID)
    assert request.status is Status.RELEASED
    assert request.released_at == T0
    assert request.updated_at > T0


def test_invalid_audit_entry_refused_before_writing(plane: ControlPlane) -> None:
    with pytest.raises(ValueError, match="patient-level"):
        plane.add_person(
            person("erin"), audit=AuditEntry("op", "person.added", "person:erin", {"dob": "x"})
        )
    with pytest.raises(NotFound):
        plane.get_person("erin")
    assert plane.audit.count() == 0


def test_sign_in_failures_count_from_the_last_success(plane: ControlPlane) -> None:
    key, other = "patient:0123456789abcdef", "client:0123"
    at = [T0 + timedelta(minutes=m) for m in range(6)]
    plane.record_sign_in_attempt([key, other], "failure", at[0], audit=AUDIT)
    plane.record_sign_in_attempt([key], "failure", at[1], audit=AUDIT)
    plane.record_sign_in_attempt([key], "success", at[2], audit=AUDIT)
    plane.record_sign_in_attempt([key, other], "failure", at[3], audit=AUDIT)
    plane.record_sign_in_attempt([key], "locked", at[4], audit=AUDIT)
    plane.record_sign_in_attempt([key], "failure", at[5], audit=AUDIT)
    assert plane.sign_in_failures(key, T0) == [at[3], at[5]]
    assert plane.sign_in_failures(key, at[4]) == [at[5]]
    assert plane.sign_in_failures(other, T0) == [at[0], at[3]]
    assert plane.sign_in_failures("patient:none", T0) == []
    with pytest.raises(ValueError, match="outcome must be one of"):
        plane.record_sign_in_attempt([key], "maybe", at[5], audit=AUDIT)
