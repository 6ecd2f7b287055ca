"""Project and people use cases: create, add members, approve, list, show.

Minimal governance: the rules are in :mod:`sde.domain.projects`; a later layer (the
``sde.project`` policy and the approval board) replaces :meth:`ProjectService.approve`'s
floor with the full decision. Every change is written with its audit event in one
transaction by the store (``sde.adapters.sql.ControlPlane``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol, TypeVar

from sde.domain.audit import AuditEntry
from sde.domain.projects import (
    ApprovedDataset,
    DatasetRequest,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    SponsorType,
    check_can_add_member,
    check_can_approve,
    check_dataset_requests,
    check_person_id,
    check_project_dates,
    check_project_id,
    check_text,
    dataset_details,
    one_year_after,
    parse_roles,
)
from sde.errors import InputError, NotFound, StateError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ProjectStore(Protocol):
    """What the project service needs from the control plane."""

    def get_person(self, person_id: str) -> Person: ...

    def list_people(self) -> list[Person]: ...

    def add_person(self, person: Person, *, audit: AuditEntry) -> None: ...

    def get_project(self, project_id: str) -> Project: ...

    def list_projects(self) -> list[Project]: ...

    def create_project(
        self, project: Project, datasets: Sequence[ApprovedDataset] = (), *, audit: AuditEntry
    ) -> None: ...

    def record_project_approval(
        self, project_id: str, *, approved_by: str, approved_at: datetime, audit: AuditEntry
    ) -> None: ...

    def list_members(self, project_id: str) -> list[Member]: ...

    def add_member(self, member: Member, *, audit: AuditEntry) -> None: ...

    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...


@dataclass(frozen=True)
class NewProject:
    id: str
    title: str
    purpose: str
    sponsor: str
    sponsor_type: str = SponsorType.ACADEMIC.value
    legal_basis: str | None = None
    national_opt_out_applies: bool = True
    start_date: date | None = None
    end_date: date | None = None
    datasets: tuple[DatasetRequest, ...] = ()


@dataclass(frozen=True)
class ProjectView:
    project: Project
    members: list[Member]
    datasets: list[ApprovedDataset]


_E = TypeVar("_E", Purpose, SponsorType, MemberRole)


def _choice(kind: type[_E], label: str, value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(v.value for v in kind)
        raise InputError(f"{label} must be one of {choices}, not {value!r}") from None


class ProjectService:
    def __init__(self, store: ProjectStore, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    def _exists(self, person_id: str) -> Person | None:
        try:
            return self._store.get_person(person_id)
        except NotFound:
            return None

    # --- people ---------------------------------------------------------------------------

    def add_person(
        self,
        actor: str,
        person_id: str,
        *,
        roles: Sequence[str],
        organisation: str | None = None,
        display_name: str | None = None,
        accredited_until: date | None = None,
    ) -> Person:
        """Record a person. Accreditation defaults to one year from today."""
        check_person_id(person_id)
        parsed = parse_roles(roles)
        check_text("an organisation", organisation, limit=200)
        check_text("a display name", display_name, limit=200)
        if self._exists(person_id) is not None:
            raise StateError(f"person {person_id!r} already exists")
        now = self._clock()
        person = Person(
            id=person_id,
            display_name=display_name or person_id,
            organisation=organisation,
            roles=parsed,
            accredited_until=accredited_until or one_year_after(now.date()),
            created_at=now,
        )
        self._store.add_person(
            person,
            audit=AuditEntry(
                actor,
                "person.added",
                f"person:{person_id}",
                {
                    "roles": [r.value for r in person.roles],
                    "organisation": organisation,
                    "accredited_until": person.accredited_until.isoformat()
                    if person.accredited_until
                    else None,
                },
            ),
        )
        return person

    # --- projects -------------------------------------------------------------------------

    def create_project(self, actor: str, new: NewProject) -> Project:
        """A draft project with its approved datasets and columns."""
        check_project_id(new.id)
        check_text("a title", new.title, limit=200, required=True)
        check_text("a sponsor", new.sponsor, limit=200, required=True)
        check_text("a legal basis", new.legal_basis, limit=200)
        purpose = _choice(Purpose, "purpose", new.purpose)
        sponsor_type = _choice(SponsorType, "sponsor type", new.sponsor_type)
        check_project_dates(new.start_date, new.end_date)
        check_dataset_requests(new.datasets)
        project = Project(
            id=new.id,
            title=new.title,
            purpose=purpose,
            sponsor=new.sponsor,
            sponsor_type=sponsor_type,
            legal_basis=new.legal_basis,
            national_opt_out_applies=new.national_opt_out_applies,
            status=ProjectStatus.DRAFT,
            start_date=new.start_date,
            end_date=new.end_date,
            created_at=self._clock(),
        )
        datasets = [
            ApprovedDataset(new.id, d.dataset, d.columns, d.justification) for d in new.datasets
        ]
        self._store.create_project(
            project,
            datasets,
            audit=AuditEntry(
                actor,
                "project.created",
                f"project:{new.id}",
                {
                    "purpose": purpose.value,
                    "sponsor": new.sponsor,
                    "sponsor_type": sponsor_type.value,
                    "legal_basis": new.legal_basis,
                    "national_opt_out_applies": new.national_opt_out_applies,
                    "start_date": new.start_date.isoformat() if new.start_date else None,
                    "end_date": new.end_date.isoformat() if new.end_date else None,
                    "datasets": dict(dataset_details(datasets)),
                },
            ),
        )
        return project

    def add_member(
        self,
        actor: str,
        project_id: str,
        person_id: str,
        *,
        role: str = MemberRole.RESEARCHER.value,
        organisation: str | None = None,
        accredited_until: date | None = None,
    ) -> Member:
        """Add a person to a project, recording the person first (as an accredited
        researcher) if they are new. ``organisation`` and ``accredited_until`` only
        describe a new person: they never silently change an existing one."""
        member_role = _choice(MemberRole, "member role", role)
        check_person_id(person_id)
        project = self._store.get_project(project_id)
        person = self._exists(person_id)
        if person is not None:
            if organisation is not None and organisation != person.organisation:
                raise InputError(
                    f"person {person_id!r} already exists with another organisation; "
                    "people are changed through their own record, not by adding a member"
                )
            if accredited_until is not None and accredited_until != person.accredited_until:
                raise InputError(
                    f"person {person_id!r} already exists with another accreditation date; "
                    "people are changed through their own record, not by adding a member"
                )
        else:
            candidate = Person(
                id=person_id,
                display_name=person_id,
                organisation=organisation,
                roles=(PersonRole.RESEARCHER,),
                accredited_until=accredited_until or one_year_after(self._clock().date()),
                created_at=self._clock(),
            )
            # Refuse before recording anyone: a new person who could not join is not added.
            check_can_add_member(project, candidate, self._clock())
            person = self.add_person(
                actor,
                person_id,
                roles=[PersonRole.RESEARCHER.value],
                organisation=organisation,
                accredited_until=candidate.accredited_until,
            )
        now = self._clock()
        check_can_add_member(project, person, now)
        member = Member(project_id, person_id, member_role, now)
        self._store.add_member(
            member,
            audit=AuditEntry(
                actor,
                "project.member_added",
                f"project:{project_id}",
                {"person": person_id, "role": member_role.value},
            ),
        )
        return member

    def approve(self, project_id: str, approved_by: str) -> Project:
        """Approve a draft project. The approver is the actor of the audit event."""
        project = self._store.get_project(project_id)
        approver = self._store.get_person(approved_by)
        members = self._store.list_members(project_id)
        now = self._clock()
        check_can_approve(project, approver, members, now)
        self._store.record_project_approval(
            project_id,
            approved_by=approved_by,
            approved_at=now,
            audit=AuditEntry(
                approved_by,
                "project.approved",
                f"project:{project_id}",
                {
                    "previous_status": project.status.value,
                    "members": len(members),
                    "datasets": sorted(
                        d.dataset for d in self._store.list_project_datasets(project_id)
                    ),
                },
            ),
        )
        return self._store.get_project(project_id)

    def list_people(self) -> list[Person]:
        return self._store.list_people()

    def list_projects(self) -> list[Project]:
        return self._store.list_projects()

    def show(self, project_id: str) -> ProjectView:
        return ProjectView(
            project=self._store.get_project(project_id),
            members=self._store.list_members(project_id),
            datasets=self._store.list_project_datasets(project_id),
        )
