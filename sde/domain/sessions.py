"""A running workspace session, as the hub reports it (pure)."""

from __future__ import annotations

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


# What a workspace's JupyterLab refuses (``sde.hub.lab``), as recorded in
# ``workspace.refused`` events beside the DuckDB rules.
LAB_DOWNLOAD = "downloading files"
LAB_EXPORT = "exporting notebooks to files"
LAB_VIEW = "opening files as web pages"
LAB_RULES = (LAB_DOWNLOAD, LAB_EXPORT, LAB_VIEW)
