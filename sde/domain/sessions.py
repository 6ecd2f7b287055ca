"""A running workspace session, as the hub reports it (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class RunningSession:
    """One person's running (or starting) server, by its name (``""``: their default
    server), with the project it was opened on when the hub says."""

    person: str
    server: str
    project: str | None


@dataclass(frozen=True)
class Stop:
    """A session to stop, and the policy's reasons."""

    session: RunningSession
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class WorkspacePod:
    """A workspace pod as the cluster has it: whose session it serves (the person's id and
    the hub's server name, ``""`` for their default server, from the pod's annotations),
    its project, and when the cluster made it (None: not said)."""

    name: str
    person: str
    server: str
    project: str
    created: dt.datetime | None


ORPHAN_GRACE = dt.timedelta(minutes=5)
"""How old a pod the hub does not know must be before it is an orphan: a spawn that began
after the hub was asked, or a pod the hub has not yet recorded, is not one."""


def orphan_pods(
    pods: Iterable[WorkspacePod],
    sessions: Iterable[RunningSession],
    *,
    now: dt.datetime,
    grace: dt.timedelta = ORPHAN_GRACE,
) -> list[WorkspacePod]:
    """The pods no running or starting session of the hub accounts for, older than
    ``grace``: left behind by a hub that restarted (its sessions forgotten) or crashed
    mid-stop, or made by something other than the hub. Nobody can reach them through the
    hub, but they still hold the project's extract. A session accounts for a pod of its
    person and server name, on its project when the hub says which (one server has one
    pod). A pod with no creation time is old."""
    known = {(s.person, s.server): s.project for s in sessions}

    def accounted_for(pod: WorkspacePod) -> bool:
        key = (pod.person, pod.server)
        return key in known and known[key] in (None, pod.project)

    return [
        pod
        for pod in pods
        if not accounted_for(pod) and (pod.created is None or now - pod.created >= grace)
    ]


# What a workspace's JupyterLab refuses (``sde.hub.lab``), as recorded in
# ``workspace.refused`` events beside the DuckDB rules.
LAB_DOWNLOAD = "downloading files"
LAB_EXPORT = "exporting notebooks to files"
LAB_VIEW = "opening files as web pages"
LAB_RULES = (LAB_DOWNLOAD, LAB_EXPORT, LAB_VIEW)
