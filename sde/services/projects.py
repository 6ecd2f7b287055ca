"""Project and people use cases: create an application, add members, list, show; and
:meth:`ProjectService.approve`, which records the board's decision through the
``sde.project`` policy (:class:`sde.services.governance.GovernanceService` does the rest of
governance: publication, comments, conflicts, votes, bans, the kill switch).

Every change is written with its audit event in one transaction by the store
(``sde.adapters.sql.ControlPlane``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sde.domain.audit import AuditEntry
from sde.domain.governance import check_uses
from sde.domain.projects import (
    ApprovedDataset,
    BoardKind,
    DatasetRequest,
    LegalBasis,
    Member,
    MemberRole,
    Person,
    PersonRole,
    Project,
    ProjectStatus,
    Purpose,
    SponsorType,
    check_can_add_member,
    check_dataset_requests,
    check_person_id,
    check_project_dates,
    check_project_id,
    check_text,
    dataset_details,
    make_dataset_request,
    one_year_after,
    parse_roles,
)
from sde.errors import ConfigError, InputError, NotFound, StateError

if TYPE_CHECKING:
    from sde.services.governance import GovernanceService

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
    summary: str | None = None
    legal_basis_type: str | None = None
    public_benefit: str | None = None
    benefit_sharing: str | None = None
    exclusive_access: bool = False
    uses: tuple[str, ...] = ()
    cohort: str | None = None
    ai_ml_use: bool = False
    ai_ml_description: str | None = None
    processors: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectView:
    project: Project
    members: list[Member]
    datasets: list[ApprovedDataset]


_E = TypeVar("_E", Purpose, SponsorType, MemberRole, LegalBasis, BoardKind)


def _choice(kind: type[_E], label: str, value: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(v.value for v in kind)
        raise InputError(f"{label} must be one of {choices}, not {value!r}") from None


class ProjectService:
    """``governance`` is needed by :meth:`approve` only: approving goes through the board's
    process and the ``sde.project`` policy, never around them."""

    def __init__(
        self,
        store: ProjectStore,
        clock: Clock = utc_now,
        *,
        governance: GovernanceService | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._governance = governance

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
        board_kind: str | None = None,
    ) -> Person:
        """Record a person. Accreditation defaults to one year from today. A board member
        may have a ``board_kind`` (lay, clinical, data_protection) for the quorum."""
        check_person_id(person_id)
        parsed = parse_roles(roles)
        kind = _choice(BoardKind, "board kind", board_kind) if board_kind else None
        if kind is not None and PersonRole.BOARD_MEMBER not in parsed:
            raise InputError("only a board member has a board kind")
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
            board_kind=kind,
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
                    "board_kind": kind.value if kind else None,
                },
            ),
        )
        return person

    # --- projects -------------------------------------------------------------------------

    def create_project(self, actor: str, new: NewProject) -> Project:
        """A draft application with the datasets and columns it asks for."""
        check_project_id(new.id)
        check_text("a title", new.title, limit=200, required=True)
        check_text("a sponsor", new.sponsor, limit=200, required=True)
        check_text("a legal basis", new.legal_basis, limit=200)
        for label, text in (
            ("a summary", new.summary),
            ("a public-benefit statement", new.public_benefit),
            ("benefit-sharing terms", new.benefit_sharing),
            ("cohort criteria", new.cohort),
            ("a description of the AI/ML use", new.ai_ml_description),
        ):
            check_text(label, text)
        for processor in new.processors:
            check_text("a data processor", processor, limit=200, required=True)
        if new.ai_ml_use and not (new.ai_ml_description or "").strip():
            raise InputError("an application that uses AI/ML must describe how")
        purpose = _choice(Purpose, "purpose", new.purpose)
        sponsor_type = _choice(SponsorType, "sponsor type", new.sponsor_type)
        legal_basis_type = (
            _choice(LegalBasis, "legal basis type", new.legal_basis_type)
            if new.legal_basis_type
            else None
        )
        uses = check_uses(new.uses)
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
            summary=new.summary,
            legal_basis_type=legal_basis_type,
            public_benefit=new.public_benefit,
            benefit_sharing=new.benefit_sharing,
            exclusive_access=new.exclusive_access,
            uses=uses,
            cohort=new.cohort,
            ai_ml_use=new.ai_ml_use,
            ai_ml_description=new.ai_ml_description,
            processors=tuple(new.processors),
        )
        datasets = [
            ApprovedDataset(
                new.id, d.dataset, d.columns, d.justification, dict(d.column_justifications)
            )
            for d in new.datasets
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
                    "legal_basis_type": legal_basis_type.value if legal_basis_type else None,
                    "national_opt_out_applies": new.national_opt_out_applies,
                    "exclusive_access": new.exclusive_access,
                    "uses": list(uses),
                    "ai_ml_use": new.ai_ml_use,
                    "processors": len(new.processors),
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
        """Record the board's approval of a published application, if the ``sde.project``
        policy allows it (comment period over, quorum, majority, no red line, ...).
        ``approved_by`` records it and is the actor of the audit event. The same as
        :meth:`GovernanceService.decide`."""
        if self._governance is None:
            raise ConfigError(
                "approving a project goes through the board and the sde.project policy: "
                "give ProjectService a GovernanceService"
            )
        return self._governance.decide(project_id, approved_by)

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


_APPLICATION_FIELDS = {
    "id",
    "title",
    "summary",
    "purpose",
    "uses",
    "sponsor",
    "sponsor_type",
    "legal_basis",
    "legal_basis_type",
    "national_opt_out_applies",
    "public_benefit",
    "benefit_sharing",
    "exclusive_access",
    "cohort",
    "start_date",
    "end_date",
    "ai_ml_use",
    "ai_ml_description",
    "processors",
    "datasets",
}


def application_from_mapping(data: Mapping[str, Any]) -> NewProject:
    """A :class:`NewProject` from an application document (YAML read by the CLI; see
    ``docs/governance.md``). Unknown fields and wrong types are refused by name."""
    if not isinstance(data, Mapping):
        raise InputError("an application must be a mapping of fields")
    unknown = sorted(set(data) - _APPLICATION_FIELDS)
    if unknown:
        raise InputError(f"unknown application fields: {', '.join(map(str, unknown))}")

    def text(key: str, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise InputError(f"the application needs {key}")
            return None
        if not isinstance(value, str):
            raise InputError(f"application field {key} must be text")
        return value

    def flag(key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise InputError(f"application field {key} must be true or false")
        return value

    def day(key: str) -> date | None:
        value = data.get(key)
        if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise InputError(f"application field {key} must be a date (YYYY-MM-DD)")

    def names(key: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(f"application field {key} must be a list of text")
        return tuple(value)

    raw_datasets = data.get("datasets") or {}
    if not isinstance(raw_datasets, Mapping):
        raise InputError("application field datasets must map each dataset to its columns")
    requests: list[DatasetRequest] = []
    for name, spec in raw_datasets.items():
        if not isinstance(spec, Mapping) or not isinstance(spec.get("columns"), Mapping):
            raise InputError(f"dataset {name!r} must give its columns, each with a justification")
        unknown = sorted(set(spec) - {"columns", "justification"})
        if unknown:
            raise InputError(f"unknown fields of dataset {name!r}: {', '.join(map(str, unknown))}")
        columns = spec["columns"]
        why: dict[str, str] = {}
        for column, reason in columns.items():
            if reason is not None and not isinstance(reason, str):
                raise InputError(f"the justification of {name}.{column} must be text")
            if reason:
                why[str(column)] = reason
        justification = spec.get("justification")
        if justification is not None and not isinstance(justification, str):
            raise InputError(f"the justification of dataset {name!r} must be text")
        requests.append(
            make_dataset_request(str(name), [str(c) for c in columns], justification, why)
        )
    return NewProject(
        id=str(text("id", required=True)),
        title=str(text("title", required=True)),
        purpose=str(text("purpose", required=True)),
        sponsor=str(text("sponsor", required=True)),
        sponsor_type=text("sponsor_type") or SponsorType.ACADEMIC.value,
        legal_basis=text("legal_basis"),
        legal_basis_type=text("legal_basis_type"),
        national_opt_out_applies=flag("national_opt_out_applies", True),
        start_date=day("start_date"),
        end_date=day("end_date"),
        datasets=tuple(requests),
        summary=text("summary"),
        public_benefit=text("public_benefit"),
        benefit_sharing=text("benefit_sharing"),
        exclusive_access=flag("exclusive_access", False),
        uses=names("uses"),
        cohort=text("cohort"),
        ai_ml_use=flag("ai_ml_use", False),
        ai_ml_description=text("ai_ml_description"),
        processors=names("processors"),
    )
