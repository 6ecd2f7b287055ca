"""The board's floor rules, bans, the status machine, the project policy's input, and the
rule catalogue read from the policy's METADATA (pure: no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sde.domain.governance import (
    PROJECT_TRANSITIONS,
    ConflictOfInterest,
    OrganisationBan,
    ban_end,
    can_move_project,
    can_vote,
    check_ban,
    check_can_change_status,
    check_can_comment,
    check_can_declare_conflict,
    check_can_publish,
    check_can_reject,
    check_can_vote,
    check_uses,
    comment_period_end,
    conflicts_of,
    effective_ban_until,
    organisation_key,
    policy_rules,
    rules_markdown,
)
from sde.domain.policy import BoardVoteFacts, make_project_input
from sde.domain.projects import (
    BoardKind,
    LegalBasis,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    SponsorType,
)
from sde.errors import InputError, PolicyDenied, StateError

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def person(person_id: str, *roles: PersonRole, organisation: str = "Board") -> Person:
    return Person(
        id=person_id,
        display_name=person_id,
        organisation=organisation,
        roles=roles or (PersonRole.BOARD_MEMBER,),
        accredited_until=date(2026, 1, 1),
        created_at=NOW,
        board_kind=BoardKind.LAY,
    )


PUBLISHED = Project(
    id="prj-1",
    title="t",
    purpose=Purpose.RESEARCH,
    sponsor="Acme Pharma",
    sponsor_type=SponsorType.COMMERCIAL,
    legal_basis=None,
    national_opt_out_applies=True,
    status=ProjectStatus.PUBLISHED,
    start_date=None,
    end_date=None,
    created_at=NOW,
    summary="s",
    public_benefit="b",
    legal_basis_type=LegalBasis.CONSENT,
    published_at=NOW - timedelta(days=28),
    comment_period_ends=NOW - timedelta(seconds=1),
)


def test_status_machine() -> None:
    assert can_move_project(ProjectStatus.DRAFT, ProjectStatus.PUBLISHED)
    assert can_move_project(ProjectStatus.APPROVED, ProjectStatus.SUSPENDED)
    assert can_move_project(ProjectStatus.SUSPENDED, ProjectStatus.APPROVED)
    assert not can_move_project(ProjectStatus.DRAFT, ProjectStatus.APPROVED)
    assert not can_move_project(ProjectStatus.REJECTED, ProjectStatus.PUBLISHED)
    assert set(PROJECT_TRANSITIONS) == set(ProjectStatus)
    assert PROJECT_TRANSITIONS[ProjectStatus.CLOSED] == frozenset()


def test_publish_needs_a_draft_that_says_what_it_is_for() -> None:
    draft = replace(PUBLISHED, status=ProjectStatus.DRAFT)
    check_can_publish(draft)
    with pytest.raises(PolicyDenied) as refused:
        check_can_publish(replace(draft, summary=None, legal_basis_type=None))
    assert refused.value.reasons == ["it has no plain-language summary", "it has no legal basis"]
    with pytest.raises(StateError, match="cannot become published"):
        check_can_publish(PUBLISHED)


def test_comment_period() -> None:
    assert comment_period_end(NOW, 28) == NOW + timedelta(days=28)
    assert comment_period_end(NOW, 0) == NOW
    for bad in (-1, True, 2.5):
        with pytest.raises(InputError):
            comment_period_end(NOW, bad)  # type: ignore[arg-type]
    open_one = replace(PUBLISHED, comment_period_ends=NOW + timedelta(seconds=1))
    check_can_comment(open_one, NOW)
    with pytest.raises(StateError, match="not open for public comment"):
        check_can_comment(PUBLISHED, NOW)


def test_votes_after_the_comment_period_by_unbanned_board_members() -> None:
    lay = person("b-lay")
    check_can_vote(PUBLISHED, lay, NOW)
    with pytest.raises(StateError, match="comment period"):
        check_can_vote(replace(PUBLISHED, comment_period_ends=NOW + timedelta(hours=1)), lay, NOW)
    with pytest.raises(StateError, match="only an application published"):
        check_can_vote(replace(PUBLISHED, status=ProjectStatus.DRAFT), lay, NOW)
    with pytest.raises(PolicyDenied, match="r-ada is not a board member"):
        check_can_vote(PUBLISHED, person("r-ada", PersonRole.RESEARCHER), NOW)
    banned = replace(lay, banned_until=NOW + timedelta(days=1))
    assert not can_vote(PUBLISHED, banned, NOW)


def test_conflicts_declared_membership_and_sponsor() -> None:
    lay = person("b-lay")
    assert conflicts_of(lay, PUBLISHED, [], []) == ()
    declared = [ConflictOfInterest("prj-1", "b-lay", "shares", NOW)]
    members = [Member("prj-1", "b-lay", MemberRole.RESEARCHER, NOW)]
    staff = replace(lay, organisation="  ACME   pharma ")
    assert [c.value for c in conflicts_of(staff, PUBLISHED, declared, members)] == [
        "declared",
        "project_member",
        "sponsor_organisation",
    ]
    assert conflicts_of(person("b-2"), PUBLISHED, declared, members) == ()


def test_reject_needs_reasons_and_a_decider() -> None:
    dana = person("dana")
    check_can_reject(PUBLISHED, dana, [], NOW, ["red line"])
    with pytest.raises(InputError, match="at least one reason"):
        check_can_reject(PUBLISHED, dana, [], NOW, [" "])
    with pytest.raises(PolicyDenied, match="not a board member or operator"):
        check_can_reject(PUBLISHED, person("r", PersonRole.RESEARCHER), [], NOW, ["x"])


def test_kill_switch_rules() -> None:
    approved = replace(PUBLISHED, status=ProjectStatus.APPROVED)
    operator = person("olu", PersonRole.OPERATOR)
    check_can_change_status(approved, operator, ProjectStatus.SUSPENDED, NOW)
    with pytest.raises(StateError, match="cannot become suspended"):
        check_can_change_status(PUBLISHED, operator, ProjectStatus.SUSPENDED, NOW)
    with pytest.raises(PolicyDenied, match="not a board member or operator"):
        check_can_change_status(
            approved, person("r", PersonRole.RESEARCHER), ProjectStatus.SUSPENDED, NOW
        )


def test_bans() -> None:
    assert ban_end(date(2025, 7, 1)) == datetime(2025, 7, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert check_ban(date(2025, 6, 1), NOW) > NOW  # through today
    with pytest.raises(InputError, match="must end in the future"):
        check_ban(date(2025, 5, 31), NOW)
    assert organisation_key(" Acme\tPHARMA ") == "acme pharma"
    with pytest.raises(InputError):
        organisation_key("   ")
    lay = person("b-lay")
    org_ban = OrganisationBan("board", "Board", NOW + timedelta(days=9), "r", NOW, "olu")
    assert effective_ban_until(lay, None) is None
    assert effective_ban_until(lay, org_ban) == NOW + timedelta(days=9)
    mine = replace(lay, banned_until=NOW + timedelta(days=30))
    assert effective_ban_until(mine, org_ban) == NOW + timedelta(days=30)


def test_uses_are_keywords() -> None:
    assert check_uses(["health_research", "service_planning"]) == (
        "health_research",
        "service_planning",
    )
    for bad in (["Health"], ["a b"], ["x"], ["ok_use", "ok_use"]):
        with pytest.raises(InputError):
            check_uses(bad)


def project_input(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "project_id": "prj-1",
        "now": NOW,
        "status": "published",
        "purpose": "research",
        "sponsor_type": "commercial",
        "legal_basis": "consent",
        "national_opt_out_applies": False,
        "summary_given": True,
        "public_benefit_given": True,
        "benefit_sharing_given": False,
        "exclusive_access": False,
        "start_date": date(2025, 7, 1),
        "end_date": "2026-07-01",
        "comment_period_ends": NOW - timedelta(microseconds=1),
        "datasets": {"events": {"code": True, "value": False}},
        "votes": [BoardVoteFacts("b-1", "approve", True, "lay", False, ("declared",))],
        "uses": ["health_research"],
    }
    values.update(changes)
    return make_project_input(**values)  # type: ignore[arg-type]


def test_project_input_is_the_documented_document() -> None:
    assert project_input() == {
        "now": "2025-06-01T12:00:00Z",
        "settings": {},
        "application": {
            "id": "prj-1",
            "status": "published",
            "purpose": "research",
            "uses": ["health_research"],
            "sponsor_type": "commercial",
            "sponsor_banned": False,
            "legal_basis": "consent",
            "national_opt_out_applies": False,
            "summary_given": True,
            "public_benefit_given": True,
            "benefit_sharing_given": False,
            "exclusive_access": False,
            "start_date": "2025-07-01",
            "end_date": "2026-07-01",
            "comment_period_ends": "2025-06-01T11:59:59Z",
            "datasets": [
                {
                    "name": "events",
                    "columns": [
                        {"name": "code", "justified": True},
                        {"name": "value", "justified": False},
                    ],
                }
            ],
        },
        "votes": [
            {
                "voter": "b-1",
                "decision": "approve",
                "board_member": True,
                "kind": "lay",
                "banned": False,
                "conflicts": ["declared"],
            }
        ],
    }
    assert project_input(min_votes=5)["settings"] == {"min_votes": 5}


def test_project_input_refuses_malformed_parts() -> None:
    with pytest.raises(InputError, match="timezone-aware"):
        project_input(now=datetime(2025, 6, 1, 12, 0))
    with pytest.raises(InputError, match="BoardVoteFacts"):
        project_input(votes=[("b-1", "approve")])
    with pytest.raises(InputError, match="true or false"):
        project_input(summary_given="yes")
    with pytest.raises(InputError, match="whole number"):
        project_input(min_votes=True)
    with pytest.raises(InputError, match="single string"):
        project_input(uses="marketing")


SOURCE = """package x

# METADATA
# title: Red line
# description: |
#   Refused whatever
#   the votes.
# custom:
#   id: project.red_line
deny contains msg if {
	msg := "x"
}

# METADATA
# title: Helper without an id
helper := 1
"""


def test_rules_are_read_from_metadata() -> None:
    [rule] = policy_rules(SOURCE)
    assert (rule.id, rule.title, rule.description) == (
        "project.red_line",
        "Red line",
        "Refused whatever the votes.",
    )
    assert "| `project.red_line` | Red line | Refused whatever the votes. |" in rules_markdown(
        [rule]
    )


def test_conflicts_are_declared_by_board_members_before_the_decision() -> None:
    check_can_declare_conflict(PUBLISHED, person("b-lay"))
    with pytest.raises(PolicyDenied, match="r is not a board member"):
        check_can_declare_conflict(PUBLISHED, person("r", PersonRole.RESEARCHER))
    with pytest.raises(StateError, match="before the board decides"):
        check_can_declare_conflict(replace(PUBLISHED, status=ProjectStatus.APPROVED), person("b"))
