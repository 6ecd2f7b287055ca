"""Which workspaces a person may open: the choices a spawner offers, and the check it makes.

A researcher chooses among the projects they are a member of; each choice carries the
``sde.access`` decision for opening a workspace, so a refused project is shown with its
reasons (not a member, project suspended, accreditation expired, banned) instead of
being hidden. The spawner (JupyterHub's ``pre_spawn_hook``, issue 7) calls
:func:`require_workspace` and refuses the spawn with the same reasons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sde.domain.policy import OPEN_WORKSPACE, PolicyEngine
from sde.domain.projects import Member
from sde.services.access import AccessFacts, decide_access


class WorkspaceFacts(AccessFacts, Protocol):
    def list_memberships(self, person_id: str) -> list[Member]: ...


@dataclass(frozen=True)
class ProjectChoice:
    project_id: str
    title: str
    allowed: bool
    reasons: tuple[str, ...]  # why not, when not allowed


def workspace_choices(
    facts: WorkspaceFacts, engine: PolicyEngine, *, person_id: str, today: dt.date
) -> list[ProjectChoice]:
    """The person's projects, each with the policy's answer to "may they open it now?"."""
    choices = []
    for membership in sorted(facts.list_memberships(person_id), key=lambda m: m.project_id):
        project = facts.get_project(membership.project_id)
        decision = decide_access(
            facts,
            engine,
            person_id=person_id,
            project_id=project.id,
            action=OPEN_WORKSPACE,
            today=today,
        )
        choices.append(
            ProjectChoice(project.id, project.title, decision.allow, tuple(decision.reasons))
        )
    return choices


def require_workspace(
    facts: WorkspaceFacts,
    engine: PolicyEngine,
    *,
    person_id: str,
    project_id: str,
    today: dt.date,
) -> None:
    """Raise :class:`sde.errors.PolicyDenied`, naming every reason, unless the person may
    open a workspace on the project today."""
    decide_access(
        facts,
        engine,
        person_id=person_id,
        project_id=project_id,
        action=OPEN_WORKSPACE,
        today=today,
    ).require(f"workspace for {person_id} on project {project_id}")
