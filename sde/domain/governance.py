"""The approval board, public comment, bans and the kill switch: pure rules and records.

Who decides what:

- the ``sde.project`` policy (``policies/project.rego``) decides whether an application
  may be approved: comment period over, quorum, majority, red lines, commercial terms,
  justifications. Nothing here repeats those rules;
- these rules are the floor around it: which status may follow which
  (:data:`PROJECT_TRANSITIONS`), who may comment, declare a conflict, vote, suspend, ban.

Rules come in pairs: ``check_<x>()`` raises with the reason, ``can_<x>()`` answers.
Reasons name people, projects, organisations and roles only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

import yaml

from sde.domain.projects import (
    APPROVER_ROLES,
    MAX_TEXT,
    Member,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    check_can_approve,
    check_text,
    is_banned,
)
from sde.errors import InputError, PolicyDenied, StateError

DEFAULT_COMMENT_PERIOD_DAYS = 28
DEFAULT_MIN_BOARD_VOTES = 3
MAX_ORGANISATION = 200
MAX_COMMENT = 5000
USE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


class BoardVoteDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class Conflict(StrEnum):
    """Why a board member's vote does not count on an application."""

    DECLARED = "declared"
    PROJECT_MEMBER = "project_member"
    SPONSOR_ORGANISATION = "sponsor_organisation"


@dataclass(frozen=True)
class PublicComment:
    """A comment from anyone on an application published for comment. ``author`` is the
    name the commenter chose to show (or ``None``: anonymous)."""

    project_id: str
    id: int | None
    author: str | None
    text: str
    created_at: datetime


@dataclass(frozen=True)
class ConflictOfInterest:
    """A conflict a board member declared on one application: their vote does not count."""

    project_id: str
    person_id: str
    interest: str
    declared_at: datetime


@dataclass(frozen=True)
class BoardVote:
    project_id: str
    voter: str
    decision: BoardVoteDecision
    reason: str
    cast_at: datetime


@dataclass(frozen=True)
class OrganisationBan:
    """Everyone whose organisation matches ``key`` is banned until ``banned_until``."""

    key: str
    organisation: str
    banned_until: datetime
    reason: str
    banned_at: datetime
    banned_by: str


# --- the status of a project -------------------------------------------------------------

PROJECT_TRANSITIONS: dict[ProjectStatus, frozenset[ProjectStatus]] = {
    ProjectStatus.DRAFT: frozenset({ProjectStatus.PUBLISHED, ProjectStatus.CLOSED}),
    ProjectStatus.PUBLISHED: frozenset(
        {ProjectStatus.APPROVED, ProjectStatus.REJECTED, ProjectStatus.CLOSED}
    ),
    ProjectStatus.APPROVED: frozenset({ProjectStatus.SUSPENDED, ProjectStatus.CLOSED}),
    ProjectStatus.SUSPENDED: frozenset({ProjectStatus.APPROVED, ProjectStatus.CLOSED}),
    ProjectStatus.REJECTED: frozenset(),
    ProjectStatus.CLOSED: frozenset(),
}


def can_move_project(current: ProjectStatus, target: ProjectStatus) -> bool:
    return target in PROJECT_TRANSITIONS[current]


def check_can_move_project(project: Project, target: ProjectStatus) -> None:
    if not can_move_project(project.status, target):
        raise StateError(
            f"project {project.id} is {project.status.value}; it cannot become {target.value}"
        )


# --- texts and values ---------------------------------------------------------------------


def check_uses(values: Iterable[str]) -> tuple[str, ...]:
    """Declared uses of the data: short keywords (``health_research``), each once."""
    uses = tuple(values)
    for use in uses:
        if not isinstance(use, str) or not USE.match(use):
            raise InputError(
                f"use {use!r} must be a keyword of lower-case letters, digits and "
                "underscores (e.g. health_research)"
            )
    if len(set(uses)) != len(uses):
        raise InputError("a use is listed twice")
    return uses


def check_reason(what: str, reason: str | None) -> str:
    if reason is None or not reason.strip():
        raise InputError(f"{what} needs a reason")
    check_text(f"the reason for {what}", reason, limit=MAX_TEXT)
    return reason.strip()


def organisation_key(name: str) -> str:
    """The organisation as compared for bans and conflicts: spaces collapsed, case folded."""
    key = " ".join(name.split()).casefold()
    if not key:
        raise InputError("an organisation name is required")
    if len(key) > MAX_ORGANISATION:
        raise InputError(f"an organisation name must be at most {MAX_ORGANISATION} characters")
    return key


def same_organisation(a: str | None, b: str | None) -> bool:
    if a is None or b is None or not a.strip() or not b.strip():
        return False
    return organisation_key(a) == organisation_key(b)


# --- public comment -----------------------------------------------------------------------


def comment_period_end(published_at: datetime, days: int) -> datetime:
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise InputError("the comment period must be a whole number of days, 0 or more")
    return published_at + timedelta(days=days)


def comment_period_open(project: Project, now: datetime) -> bool:
    return (
        project.status is ProjectStatus.PUBLISHED
        and project.comment_period_ends is not None
        and now < project.comment_period_ends
    )


def check_can_publish(project: Project) -> None:
    """A draft application is published for comment once it says what it is for."""
    check_can_move_project(project, ProjectStatus.PUBLISHED)
    missing = [
        label
        for label, value in (
            ("plain-language summary", project.summary),
            ("public-benefit statement", project.public_benefit),
            ("legal basis", project.legal_basis_type),
        )
        if not value
    ]
    if missing:
        raise PolicyDenied(f"publish project {project.id}", [f"it has no {m}" for m in missing])


def check_can_comment(project: Project, now: datetime) -> None:
    if not comment_period_open(project, now):
        raise StateError(f"project {project.id} is not open for public comment")


# --- the board ----------------------------------------------------------------------------


def check_can_declare_conflict(project: Project, person: Person) -> None:
    if project.status not in (ProjectStatus.DRAFT, ProjectStatus.PUBLISHED):
        raise StateError(
            f"project {project.id} is {project.status.value}; conflicts are declared "
            "before the board decides"
        )
    if PersonRole.BOARD_MEMBER not in person.roles:
        raise PolicyDenied("declare a conflict", [f"{person.id} is not a board member"])


def check_can_vote(project: Project, voter: Person, now: datetime) -> None:
    """Board members vote on a published application once its comment period is over."""
    if project.status is not ProjectStatus.PUBLISHED:
        raise StateError(
            f"project {project.id} is {project.status.value}; only an application "
            "published for comment is voted on"
        )
    if comment_period_open(project, now):
        assert project.comment_period_ends is not None
        raise StateError(
            f"the public comment period of project {project.id} runs until "
            f"{project.comment_period_ends.isoformat(timespec='minutes')}; the board votes after"
        )
    reasons: list[str] = []
    if PersonRole.BOARD_MEMBER not in voter.roles:
        reasons.append(f"{voter.id} is not a board member")
    if is_banned(voter, now):
        reasons.append(f"{voter.id} is banned")
    if reasons:
        raise PolicyDenied("vote", reasons)


def can_vote(project: Project, voter: Person, now: datetime) -> bool:
    try:
        check_can_vote(project, voter, now)
    except (PolicyDenied, StateError):
        return False
    return True


def conflicts_of(
    voter: Person,
    project: Project,
    declared: Iterable[ConflictOfInterest],
    members: Iterable[Member],
) -> tuple[Conflict, ...]:
    """Why ``voter``'s vote on ``project`` does not count (empty: it counts)."""
    found: list[Conflict] = []
    if any(c.person_id == voter.id for c in declared):
        found.append(Conflict.DECLARED)
    if any(m.person_id == voter.id for m in members):
        found.append(Conflict.PROJECT_MEMBER)
    if same_organisation(voter.organisation, project.sponsor):
        found.append(Conflict.SPONSOR_ORGANISATION)
    return tuple(found)


def check_can_reject(
    project: Project,
    decider: Person,
    members: Iterable[Member],
    now: datetime,
    reasons: Sequence[str],
) -> None:
    """The board's rejection is recorded, with its reasons, by whoever may record decisions."""
    check_can_approve(project, decider, members, now)
    if not [r for r in reasons if r.strip()]:
        raise InputError("a rejection needs at least one reason")


# --- the kill switch ----------------------------------------------------------------------


def check_can_change_status(
    project: Project, actor: Person, target: ProjectStatus, now: datetime
) -> None:
    """Suspend, resume or close: an unbanned operator or board member."""
    check_can_move_project(project, target)
    reasons: list[str] = []
    if not APPROVER_ROLES.intersection(actor.roles):
        reasons.append(f"{actor.id} is not a board member or operator")
    if is_banned(actor, now):
        reasons.append(f"{actor.id} is banned")
    if reasons:
        raise PolicyDenied(f"make project {project.id} {target.value}", reasons)


# --- bans -----------------------------------------------------------------------------------


def ban_end(last_day: date) -> datetime:
    """A ban "until 2025-07-01" lasts through that day (UTC)."""
    return datetime.combine(last_day, time.max, tzinfo=UTC)


def check_ban(last_day: date, now: datetime) -> datetime:
    until = ban_end(last_day)
    if until <= now:
        raise InputError(f"a ban must end in the future, not on {last_day.isoformat()}")
    return until


def check_can_ban(actor: Person, now: datetime) -> None:
    reasons: list[str] = []
    if PersonRole.OPERATOR not in actor.roles and PersonRole.BOARD_MEMBER not in actor.roles:
        reasons.append(f"{actor.id} is not an operator or board member")
    if is_banned(actor, now):
        reasons.append(f"{actor.id} is banned")
    if reasons:
        raise PolicyDenied("ban", reasons)


def effective_ban_until(person: Person, org_ban: OrganisationBan | None) -> datetime | None:
    """The later of the person's own ban and their organisation's."""
    ends = [person.banned_until, org_ban.banned_until if org_ban is not None else None]
    known = [end for end in ends if end is not None]
    return max(known) if known else None


# --- the rule catalogue, from the policy's own METADATA ---------------------------------------


@dataclass(frozen=True)
class PolicyRule:
    """One annotated rule of a Rego policy: what ``docs/governance.md`` lists."""

    id: str
    title: str
    description: str
    kind: str


def policy_rules(source: str) -> list[PolicyRule]:
    """The rules of a Rego module whose ``# METADATA`` block has ``custom.id``, in order."""
    rules: list[PolicyRule] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "# METADATA":
            i += 1
            continue
        i += 1
        block: list[str] = []
        while i < len(lines) and lines[i].startswith("#"):
            block.append(lines[i][2:] if lines[i].startswith("# ") else lines[i][1:])
            i += 1
        data: Any = yaml.safe_load("\n".join(block)) or {}
        custom = data.get("custom") if isinstance(data, Mapping) else None
        if isinstance(custom, Mapping) and custom.get("id"):
            rules.append(
                PolicyRule(
                    id=str(custom["id"]),
                    title=str(data.get("title", "")),
                    description=" ".join(str(data.get("description", "")).split()),
                    kind=str(custom.get("kind", "refusal")),
                )
            )
    return rules


def rules_markdown(rules: Sequence[PolicyRule]) -> str:
    """The catalogue section of ``docs/governance.md``."""
    lines = [
        "| id | rule | what it means |",
        "|---|---|---|",
    ]
    for rule in rules:
        lines.append(f"| `{rule.id}` | {rule.title} | {rule.description} |")
    return "\n".join(lines) + "\n"


def transitions_markdown() -> str:
    lines = ["| from | may become |", "|---|---|"]
    for status in ProjectStatus:
        after = ", ".join(sorted(s.value for s in PROJECT_TRANSITIONS[status])) or "(final)"
        lines.append(f"| `{status.value}` | {after} |")
    return "\n".join(lines) + "\n"
