"""Stopping the workspaces policy no longer allows: a suspended project, a banned person
(or organisation), an expired accreditation, a membership removed.

The hub knows which sessions run and on which project (the ``project`` the person chose,
kept in the server's ``user_options``); sde knows whether each may go on. The session
guard (``sde session-guard``, a service the hub starts and gives a token that may list
users and stop servers) asks the ``sde.access`` policy about every running session every
few seconds and stops each refused one, recording ``workspace.stopped`` with the policy's
reasons. The checks themselves are not audited (they would add an event per session every
few seconds); each stop is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Protocol

from sde.domain.policy import OPEN_WORKSPACE, PolicyEngine
from sde.domain.projects import PERSON_ID, PROJECT_ID, ProjectStatus
from sde.domain.sessions import ORPHAN_GRACE, RunningSession, Stop, WorkspacePod, orphan_pods
from sde.errors import NotFound
from sde.services.access import AccessFacts, decide_access
from sde.services.ports import AuditSink

GUARD = "session-guard"


class SessionHub(Protocol):
    def running_sessions(self) -> list[RunningSession]: ...

    def stop(self, session: RunningSession) -> None: ...


def sessions_to_stop(
    facts: AccessFacts,
    engine: PolicyEngine,
    sessions: list[RunningSession],
    *,
    today: dt.date,
) -> list[Stop]:
    """The sessions that may not go on, each with why. A session whose person or project
    is unknown or malformed is stopped (fail closed)."""
    stops = []
    for session in sessions:
        if not PERSON_ID.fullmatch(session.person):
            stops.append(Stop(session, ("not a person sde knows",)))
            continue
        if session.project is None or not PROJECT_ID.fullmatch(session.project):
            stops.append(Stop(session, ("the session was not opened on a project",)))
            continue
        decision = decide_access(
            facts,
            engine,
            person_id=session.person,
            project_id=session.project,
            action=OPEN_WORKSPACE,
            today=today,
        )
        if not decision.allow:
            stops.append(Stop(session, tuple(decision.reasons) or ("refused by policy",)))
    return stops


def stop_refused_sessions(
    facts: AccessFacts,
    engine: PolicyEngine,
    hub: SessionHub,
    audit: AuditSink,
    *,
    today: dt.date,
    on_stop: Callable[[Stop], None] | None = None,
) -> list[Stop]:
    """Stop every running session the policy refuses now; record each stop."""
    stops = sessions_to_stop(facts, engine, hub.running_sessions(), today=today)
    for stop in stops:
        hub.stop(stop.session)
        audit.record(
            GUARD,
            "workspace.stopped",
            f"person:{stop.session.person}",
            {
                "project": stop.session.project or "",
                "server": stop.session.server,
                "reasons": list(stop.reasons),
            },
        )
        if on_stop is not None:
            on_stop(stop)
    return stops


class ProjectObjects(Protocol):
    """The per-project objects in a cluster (``sde.adapters.kubernetes.WorkspaceCluster``)."""

    def open_projects(self) -> list[str]: ...

    def close_project(self, project_id: str) -> list[str]: ...


class WorkspacePods(Protocol):
    """The workspace pods in a cluster (``sde.adapters.kubernetes.WorkspaceCluster``)."""

    def workspace_pods(self) -> list[WorkspacePod]: ...

    def delete_workspace_pod(self, name: str) -> bool: ...


def remove_orphan_pods(
    hub: SessionHub,
    cluster: WorkspacePods,
    audit: AuditSink,
    *,
    now: dt.datetime,
    grace: dt.timedelta = ORPHAN_GRACE,
) -> list[WorkspacePod]:
    """Delete the workspace pods no session of the hub accounts for (a hub restart forgets
    its sessions but not their pods; see :func:`~sde.domain.sessions.orphan_pods`), and
    record ``workspace.orphan_removed`` for each. The pods are listed before the hub is
    asked, so a pod made in between is known to the hub or younger than ``grace``."""
    pods = cluster.workspace_pods()
    removed = []
    for pod in orphan_pods(pods, hub.running_sessions(), now=now, grace=grace):
        if not cluster.delete_workspace_pod(pod.name):
            continue  # gone already
        removed.append(pod)
        audit.record(
            GUARD,
            "workspace.orphan_removed",
            f"person:{pod.person}" if pod.person else f"pod:{pod.name}",
            {"pod": pod.name, "project": pod.project, "server": pod.server},
        )
    return removed


def close_inactive_projects(
    facts: AccessFacts, cluster: ProjectObjects, audit: AuditSink
) -> dict[str, list[str]]:
    """Remove the cluster objects (workspace pods, then the NetworkPolicy) of every
    project that is no longer approved (suspended, closed) or no longer exists; record
    ``workspace.project_closed`` with what was removed. Returns them by project."""
    closed: dict[str, list[str]] = {}
    for project_id in cluster.open_projects():
        try:
            status = str(facts.get_project(project_id).status.value)
        except NotFound:
            status = "unknown"
        if status == ProjectStatus.APPROVED.value:
            continue
        removed = cluster.close_project(project_id)
        closed[project_id] = removed
        audit.record(
            GUARD,
            "workspace.project_closed",
            f"project:{project_id}",
            {"status": status, "removed": removed},
        )
    return closed
