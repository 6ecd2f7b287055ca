"""Access decisions: gather the facts from the control plane, ask the ``sde.access``
policy. One place, so the workspace, the extract and the airlock ask the same question
the same way.

A ban of the person's organisation reaches the policy as the person's ban: the policy
sees the later of the two end dates (so a banned organisation's people are refused)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol

from sde.domain.governance import OrganisationBan, effective_ban_until
from sde.domain.policy import (
    ACCESS,
    OPEN_WORKSPACE,
    OPERATOR,
    RESEARCHER,
    Decision,
    PolicyEngine,
    make_access_input,
)
from sde.domain.projects import ApprovedDataset, Member, Person, PersonRole, Project
from sde.errors import NotFound


class AccessFacts(Protocol):
    """What an access decision reads from the control plane."""

    def get_person(self, person_id: str) -> Person: ...

    def get_project(self, project_id: str) -> Project: ...

    def list_members(self, project_id: str) -> list[Member]: ...

    def list_project_datasets(self, project_id: str) -> list[ApprovedDataset]: ...

    def get_organisation_ban(self, organisation: str | None) -> OrganisationBan | None: ...


def decide_access(
    facts: AccessFacts,
    engine: PolicyEngine,
    *,
    person_id: str,
    project_id: str,
    action: str,
    today: dt.date,
    dataset: str | None = None,
    columns: Iterable[str] = (),
) -> Decision:
    """The policy's decision. An unknown person or project is passed as missing, and the
    policy refuses it (the refusal names which)."""
    try:
        person: Person | None = facts.get_person(person_id)
    except NotFound:
        person = None
    try:
        project: Project | None = facts.get_project(project_id)
    except NotFound:
        project = None
    role = RESEARCHER
    if person is not None and action != OPEN_WORKSPACE and PersonRole.OPERATOR in person.roles:
        role = OPERATOR
    members: list[str] = []
    approved: dict[str, list[str]] = {}
    if project is not None:
        members = [m.person_id for m in facts.list_members(project.id)]
        approved = {d.dataset: list(d.columns) for d in facts.list_project_datasets(project.id)}
    banned_until = None
    if person is not None:
        ban = effective_ban_until(person, facts.get_organisation_ban(person.organisation))
        banned_until = None if ban is None else ban.date()
    document = make_access_input(
        action=action,
        today=today,
        person_id=None if person is None else person.id,
        project_id=None if project is None else project.id,
        role=role,
        accredited_until=None if person is None else person.accredited_until,
        banned_until=banned_until,
        project_status=None if project is None else project.status.value,
        members=members,
        start_date=None if project is None else project.start_date,
        end_date=None if project is None else project.end_date,
        approved_datasets=approved,
        dataset=dataset,
        columns=columns,
    )
    return engine.decide(ACCESS, document)
