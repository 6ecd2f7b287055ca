"""People, projects and what the control plane records about them: pure models and rules.

"Safe people" and "safe projects": a project is an application, created as a draft with
the datasets and columns it asks for (each with a justification), published for public
comment, and decided by the board through the ``sde.project`` policy
(:mod:`sde.domain.governance` holds the board's rules). These rules are the floor.

Also here: the records of release requests, files and reviews as the control plane stores
them. Their state rules live in :mod:`sde.domain.releases`.

Rules come in pairs: ``check_<x>()`` raises with the reason, ``<x>()``-style predicates
answer. Reasons name people, projects, datasets and roles only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sde.domain.releases import Status, Vote
from sde.errors import InputError, PolicyDenied, StateError

PROJECT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
PERSON_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
COLUMN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RELEASE_REQUEST_ID = re.compile(r"^rr-[0-9a-f]{12}$")
MAX_TITLE = 200
MAX_TEXT = 2000


class PersonRole(StrEnum):
    RESEARCHER = "researcher"
    OUTPUT_CHECKER = "output_checker"
    BOARD_MEMBER = "board_member"
    OPERATOR = "operator"


class Purpose(StrEnum):
    RESEARCH = "research"
    PLANNING = "planning"


class SponsorType(StrEnum):
    NHS = "nhs"
    ACADEMIC = "academic"
    CHARITY = "charity"
    COMMERCIAL = "commercial"


class ProjectStatus(StrEnum):
    """An application's life: drafted, published for public comment, decided by the
    board (approved or rejected, with reasons kept), then possibly suspended (the kill
    switch) and finally closed. ``sde.domain.governance.PROJECT_TRANSITIONS`` says which
    moves are allowed."""

    DRAFT = "draft"
    PUBLISHED = "published"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class BoardKind(StrEnum):
    """What a board member brings to the quorum."""

    LAY = "lay"
    CLINICAL = "clinical"
    DATA_PROTECTION = "data_protection"


class LegalBasis(StrEnum):
    """The legal basis for using confidential patient information (common law duty of
    confidentiality): the national data opt-out can only be set aside by consent or a
    legal requirement."""

    CONSENT = "consent"
    S251_SUPPORT = "s251_support"
    LEGAL_REQUIREMENT = "legal_requirement"
    PUBLIC_TASK = "public_task"


class MemberRole(StrEnum):
    RESEARCHER = "researcher"
    LEAD = "lead"


APPROVER_ROLES = frozenset({PersonRole.BOARD_MEMBER, PersonRole.OPERATOR})


@dataclass(frozen=True)
class Person:
    id: str
    display_name: str
    organisation: str | None
    roles: tuple[PersonRole, ...]
    accredited_until: date | None
    created_at: datetime
    banned_until: datetime | None = None
    ban_reason: str | None = None
    board_kind: BoardKind | None = None


@dataclass(frozen=True)
class Project:
    id: str
    title: str
    purpose: Purpose
    sponsor: str
    sponsor_type: SponsorType
    legal_basis: str | None
    national_opt_out_applies: bool
    status: ProjectStatus
    start_date: date | None
    end_date: date | None
    created_at: datetime
    approved_at: datetime | None = None
    approved_by: str | None = None
    # The application (see docs/governance.md); all published with the project.
    summary: str | None = None
    legal_basis_type: LegalBasis | None = None
    public_benefit: str | None = None
    benefit_sharing: str | None = None
    exclusive_access: bool = False
    uses: tuple[str, ...] = ()
    cohort: str | None = None
    ai_ml_use: bool = False
    ai_ml_description: str | None = None
    processors: tuple[str, ...] = ()
    # The board's process and decision.
    published_at: datetime | None = None
    comment_period_ends: datetime | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None
    decision_reasons: tuple[str, ...] = ()
    # Why the project was last suspended, resumed or closed.
    status_reason: str | None = None
    status_changed_at: datetime | None = None


@dataclass(frozen=True)
class Member:
    project_id: str
    person_id: str
    role: MemberRole
    added_at: datetime


@dataclass(frozen=True)
class ApprovedDataset:
    """A dataset a project may use, and the only columns it may see."""

    project_id: str
    dataset: str
    columns: tuple[str, ...]
    justification: str | None = None
    column_justifications: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetRequest:
    """A dataset and columns asked for when a project is created (``NAME:col1,col2``),
    with why the dataset is needed and why each column is."""

    dataset: str
    columns: tuple[str, ...]
    justification: str | None = None
    column_justifications: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseRequest:
    id: str
    project_id: str
    author: str
    status: Status
    title: str
    comment: str | None
    created_at: datetime
    updated_at: datetime
    released_at: datetime | None = None


@dataclass(frozen=True)
class ReleaseFile:
    """A file of a release request. Its bytes are read separately (they can be large)."""

    request_id: str
    name: str
    sha256: str
    size_bytes: int
    kind: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None  # the researcher's justification for an exception
    description: str | None = None


@dataclass(frozen=True)
class FileVote:
    """One checker's decision on one file, with their comment."""

    decision: Vote
    comment: str | None = None


@dataclass(frozen=True)
class Review:
    """One checker's review: the request-level vote (derived from the per-file decisions
    by :func:`sde.domain.releases.vote_from_files`) and each file's decision."""

    request_id: str
    reviewer: str
    decision: Vote
    comment: str | None
    created_at: datetime
    files: Mapping[str, FileVote] = field(default_factory=dict)


# --- validation -------------------------------------------------------------------------


def check_project_id(value: str) -> str:
    if not PROJECT_ID.match(value):
        raise InputError(
            f"project id {value!r} must be 2 to 63 characters of lower-case letters, digits "
            "and dashes, starting with a letter or digit"
        )
    return value


def check_person_id(value: str) -> str:
    if not PERSON_ID.match(value):
        raise InputError(
            f"person id {value!r} must be a username: 1 to 64 lower-case letters, digits, "
            "dots, dashes or underscores, starting with a letter or digit"
        )
    return value


def check_text(
    label: str, value: str | None, limit: int = MAX_TEXT, required: bool = False
) -> None:
    if value is None or value == "":
        if required:
            raise InputError(f"{label} is required")
        return
    if len(value) > limit:
        raise InputError(f"{label} must be at most {limit} characters")


def parse_roles(values: Iterable[str]) -> tuple[PersonRole, ...]:
    roles: set[PersonRole] = set()
    for value in values:
        try:
            roles.add(PersonRole(value))
        except ValueError:
            choices = ", ".join(r.value for r in PersonRole)
            raise InputError(f"unknown role {value!r}; choose from {choices}") from None
    if not roles:
        raise InputError("a person needs at least one role")
    return tuple(sorted(roles, key=list(PersonRole).index))


def parse_dataset_request(text: str) -> DatasetRequest:
    """``NAME:col1,col2`` or ``NAME:col1,col2:justification``."""
    name, sep, rest = text.partition(":")
    if not sep:
        raise InputError(f"dataset {text!r} must be written NAME:col1,col2[:justification]")
    columns_text, _, justification = rest.partition(":")
    columns = tuple(c.strip() for c in columns_text.split(",") if c.strip())
    return make_dataset_request(name.strip(), columns, justification.strip() or None)


def make_dataset_request(
    dataset: str,
    columns: Sequence[str],
    justification: str | None = None,
    column_justifications: Mapping[str, str] | None = None,
) -> DatasetRequest:
    if not DATASET_NAME.match(dataset):
        raise InputError(
            f"dataset name {dataset!r} must be lower-case letters, digits and underscores"
        )
    if not columns:
        raise InputError(f"dataset {dataset!r} needs at least one approved column")
    for column in columns:
        if not COLUMN_NAME.match(column):
            raise InputError(
                f"column {column!r} of dataset {dataset!r} must be lower-case letters, "
                "digits and underscores"
            )
    if len(set(columns)) != len(columns):
        raise InputError(f"dataset {dataset!r} lists a column twice")
    check_text(f"the justification for {dataset!r}", justification)
    why = dict(column_justifications or {})
    for column, text in why.items():
        if column not in columns:
            raise InputError(
                f"a justification is given for column {column!r}, which dataset "
                f"{dataset!r} does not request"
            )
        check_text(f"the justification for {dataset}.{column}", text)
    return DatasetRequest(
        dataset, tuple(columns), justification, {c: why[c] for c in columns if why.get(c)}
    )


def check_dataset_requests(requests: Sequence[DatasetRequest]) -> None:
    names = [r.dataset for r in requests]
    if len(set(names)) != len(names):
        raise InputError("a dataset is listed twice; give each dataset once with all its columns")


def check_project_dates(start: date | None, end: date | None) -> None:
    if (start is None) != (end is None):
        raise InputError("give both a start and an end date, or neither")
    if start is not None and end is not None and end <= start:
        raise InputError("a project's end date must be after its start date")


def one_year_after(day: date) -> date:
    """The same day a year later (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


# --- people ------------------------------------------------------------------------------


def is_banned(person: Person, now: datetime) -> bool:
    return person.banned_until is not None and person.banned_until > now


def is_accredited(person: Person, today: date) -> bool:
    return person.accredited_until is not None and person.accredited_until >= today


# --- rules -------------------------------------------------------------------------------


def check_can_add_member(project: Project, person: Person, now: datetime) -> None:
    """Only accredited, unbanned researchers join a project that is not closed."""
    if project.status is ProjectStatus.CLOSED:
        raise StateError(f"project {project.id} is closed; it takes no new members")
    reasons: list[str] = []
    if PersonRole.RESEARCHER not in person.roles:
        reasons.append(f"{person.id} is not a researcher")
    if is_banned(person, now):
        reasons.append(f"{person.id} is banned")
    if not is_accredited(person, now.date()):
        reasons.append(f"{person.id} is not accredited (or the accreditation has lapsed)")
    if reasons:
        raise PolicyDenied("add member", reasons)


def can_add_member(project: Project, person: Person, now: datetime) -> bool:
    try:
        check_can_add_member(project, person, now)
    except (PolicyDenied, StateError):
        return False
    return True


def check_can_approve(
    project: Project, approver: Person, members: Iterable[Member], now: datetime
) -> None:
    """Who may record the board's decision on an application published for comment: an
    unbanned board member or operator who is not one of its members. Whether the project
    may be approved is the ``sde.project`` policy's answer, asked after this floor."""
    if project.status is not ProjectStatus.PUBLISHED:
        raise StateError(
            f"project {project.id} is {project.status.value}; only an application published "
            "for comment can be decided"
        )
    reasons: list[str] = []
    if not APPROVER_ROLES.intersection(approver.roles):
        reasons.append(f"{approver.id} is not a board member or operator")
    if is_banned(approver, now):
        reasons.append(f"{approver.id} is banned")
    if any(m.person_id == approver.id for m in members):
        reasons.append(f"{approver.id} is a member of project {project.id}")
    if reasons:
        raise PolicyDenied("approve project", reasons)


def can_approve(
    project: Project, approver: Person, members: Iterable[Member], now: datetime
) -> bool:
    try:
        check_can_approve(project, approver, members, now)
    except (PolicyDenied, StateError):
        return False
    return True


def dataset_details(
    datasets: Iterable[DatasetRequest | ApprovedDataset],
) -> Mapping[str, list[str]]:
    """Datasets and columns as recorded in audit details (names only)."""
    return {d.dataset: list(d.columns) for d in datasets}
