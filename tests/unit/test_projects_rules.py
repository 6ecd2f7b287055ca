"""Project and people rules (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sde.domain.projects import (
    DatasetRequest,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    SponsorType,
    can_add_member,
    can_approve,
    check_can_add_member,
    check_can_approve,
    check_dataset_requests,
    check_person_id,
    check_project_dates,
    check_project_id,
    is_accredited,
    is_banned,
    one_year_after,
    parse_dataset_request,
    parse_roles,
)
from sde.errors import InputError, PolicyDenied, StateError

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

PROJECT = Project(
    id="diabetes-1",
    title="Diabetes outcomes",
    purpose=Purpose.RESEARCH,
    sponsor="Uni",
    sponsor_type=SponsorType.ACADEMIC,
    legal_basis=None,
    national_opt_out_applies=True,
    status=ProjectStatus.DRAFT,
    start_date=None,
    end_date=None,
    created_at=NOW,
)
ALICE = Person(
    id="alice",
    display_name="alice",
    organisation="Uni",
    roles=(PersonRole.RESEARCHER,),
    accredited_until=date(2025, 12, 31),
    created_at=NOW,
)
DANA = Person(
    id="dana",
    display_name="dana",
    organisation="NHSE",
    roles=(PersonRole.BOARD_MEMBER,),
    accredited_until=None,
    created_at=NOW,
)


@pytest.mark.parametrize("value", ["ab", "diabetes-1", "a" * 63, "0-study"])
def test_valid_project_ids(value: str) -> None:
    assert check_project_id(value) == value


@pytest.mark.parametrize("value", ["a", "-ab", "Diabetes", "a_b", "a" * 64, "a b", ""])
def test_invalid_project_ids(value: str) -> None:
    with pytest.raises(InputError, match="project id"):
        check_project_id(value)


@pytest.mark.parametrize("value", ["alice", "a.smith", "b_jones-2", "x"])
def test_valid_person_ids(value: str) -> None:
    assert check_person_id(value) == value


@pytest.mark.parametrize("value", ["", "Alice", ".alice", "a b", "a" * 65, "a/b"])
def test_invalid_person_ids(value: str) -> None:
    with pytest.raises(InputError, match="person id"):
        check_person_id(value)


def test_dataset_request_parsing() -> None:
    assert parse_dataset_request("gp_events:pid, code,date") == DatasetRequest(
        "gp_events", ("pid", "code", "date"), None
    )
    assert parse_dataset_request("hes:pid:to find admissions: all of them") == DatasetRequest(
        "hes", ("pid",), "to find admissions: all of them"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("gp_events", "NAME:col1,col2"),
        ("gp_events:", "at least one approved column"),
        ("GP:pid", "dataset name"),
        ("gp:pid,Code", "column 'Code'"),
        ("gp:pid,pid", "twice"),
    ],
)
def test_bad_dataset_requests(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        parse_dataset_request(text)


def test_a_dataset_is_listed_once() -> None:
    one = DatasetRequest("gp", ("pid",))
    with pytest.raises(InputError, match="listed twice"):
        check_dataset_requests([one, one])
    check_dataset_requests([one, DatasetRequest("hes", ("pid",))])


def test_project_dates() -> None:
    check_project_dates(None, None)
    check_project_dates(date(2025, 1, 1), date(2025, 1, 2))
    with pytest.raises(InputError, match="after its start"):
        check_project_dates(date(2025, 1, 1), date(2025, 1, 1))
    with pytest.raises(InputError, match="both"):
        check_project_dates(date(2025, 1, 1), None)


def test_roles_parse_in_a_stable_order() -> None:
    assert parse_roles(["operator", "researcher", "operator"]) == (
        PersonRole.RESEARCHER,
        PersonRole.OPERATOR,
    )
    with pytest.raises(InputError, match="unknown role 'admin'"):
        parse_roles(["admin"])
    with pytest.raises(InputError, match="at least one role"):
        parse_roles([])


def test_one_year_after() -> None:
    assert one_year_after(date(2025, 3, 1)) == date(2026, 3, 1)
    assert one_year_after(date(2024, 2, 29)) == date(2025, 2, 28)


def test_bans_and_accreditation() -> None:
    assert not is_banned(ALICE, NOW)
    banned = replace(ALICE, banned_until=NOW + timedelta(days=1), ban_reason="x")
    assert is_banned(banned, NOW)
    assert not is_banned(banned, NOW + timedelta(days=2))
    assert is_accredited(ALICE, date(2025, 12, 31))
    assert not is_accredited(ALICE, date(2026, 1, 1))
    assert not is_accredited(DANA, date(2025, 1, 1))


def test_accredited_researcher_can_join() -> None:
    check_can_add_member(PROJECT, ALICE, NOW)
    assert can_add_member(PROJECT, ALICE, NOW)


def test_member_refusals_name_every_reason() -> None:
    lapsed_banned_checker = replace(
        ALICE,
        roles=(PersonRole.OUTPUT_CHECKER,),
        accredited_until=date(2025, 1, 1),
        banned_until=NOW + timedelta(days=30),
    )
    with pytest.raises(PolicyDenied) as info:
        check_can_add_member(PROJECT, lapsed_banned_checker, NOW)
    assert info.value.reasons == [
        "alice is not a researcher",
        "alice is banned",
        "alice is not accredited (or the accreditation has lapsed)",
    ]
    assert not can_add_member(PROJECT, lapsed_banned_checker, NOW)


def test_closed_project_takes_no_members() -> None:
    closed = replace(PROJECT, status=ProjectStatus.CLOSED)
    with pytest.raises(StateError, match="closed"):
        check_can_add_member(closed, ALICE, NOW)
    assert not can_add_member(closed, ALICE, NOW)


PUBLISHED = replace(PROJECT, status=ProjectStatus.PUBLISHED)


def test_board_member_records_the_decision_on_a_published_application() -> None:
    members = [Member("diabetes-1", "alice", MemberRole.LEAD, NOW)]
    check_can_approve(PUBLISHED, DANA, members, NOW)
    assert can_approve(PUBLISHED, DANA, members, NOW)


def test_only_published_applications_are_decided() -> None:
    for status in (ProjectStatus.DRAFT, ProjectStatus.APPROVED, ProjectStatus.REJECTED):
        with pytest.raises(StateError, match="only an application published for comment"):
            check_can_approve(replace(PROJECT, status=status), DANA, [], NOW)


def test_approver_rules() -> None:
    with pytest.raises(PolicyDenied, match="not a board member or operator"):
        check_can_approve(PUBLISHED, ALICE, [], NOW)
    member_dana = [Member("diabetes-1", "dana", MemberRole.RESEARCHER, NOW)]
    with pytest.raises(PolicyDenied, match="is a member of project diabetes-1"):
        check_can_approve(PUBLISHED, DANA, member_dana, NOW)
    banned = replace(DANA, banned_until=NOW + timedelta(hours=1))
    with pytest.raises(PolicyDenied, match="dana is banned"):
        check_can_approve(PUBLISHED, banned, [], NOW)
    operator = replace(DANA, roles=(PersonRole.OPERATOR,))
    assert can_approve(PUBLISHED, operator, [], NOW)
    assert not can_approve(PUBLISHED, ALICE, [], NOW)
