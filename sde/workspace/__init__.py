"""What a researcher imports inside a notebook.

    import sde.workspace as ws
    con = ws.connect("diabetes-outcomes")          # DuckDB over the project's extract
    table = con.sql("select sex, count(*) as n from patients group by sex").df()
    ws.save_output(table, "patients_by_sex.csv", project="diabetes-outcomes")

``connect`` asks the ``sde.access`` policy first (a member of an approved, active project,
accredited, not banned), then opens a DuckDB connection with the extract's tables
registered read-only at their pinned versions, external access disabled except for the
session's scratch area (:func:`scratch_dir`), and the configuration locked. Whatever the
lock refuses (a file outside the scratch area, ``ATTACH``, an extension, a setting,
``register``) is written to the audit log as ``workspace.refused`` and raised as
``sde.adapters.duckdb.WorkspaceRefused`` (a ``PolicyDenied`` that names the rule, and a
``duckdb.Error``). Like the CLI, this module is an entry point: when ``home`` or ``user``
are not given it reads ``SDE_HOME`` and ``SDE_USER`` (set by the workspace spawner), else
``./.sde`` and the login name; the scratch area comes from ``SDE_SCRATCH`` when set.

In a session without the home (service mode: ``SDE_API_URL`` and ``SDE_TOKEN`` set and no
``home=`` given), the control plane is reached through the sde service
(:mod:`sde.workspace.service`): ``connect`` asks it to open the workspace (the policy is
asked there) and reads the extract from ``SDE_EXTRACT``: a folder, or with the lake on
object storage an ``s3://``/``az://``/``gs://`` URL read with the store's options from the
session's standard variables (:func:`sde.workspace.service.extract_location`); refusals
are recorded through it; the scratch area is ``SDE_SCRATCH`` and the outputs folder
``SDE_OUTPUTS``, both required. With the home (``home=`` or ``SDE_HOME``), a lake on object
storage takes its credentials from the ``SDE_LAKE_*`` variables, as the ``sde`` command
does.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from sde.adapters import delta
from sde.adapters.delta import Location, RemoteTable
from sde.adapters.duckdb import GuardedConnection, Refusal, locked_connection
from sde.domain.audit import AuditEntry
from sde.domain.policy import OPEN_WORKSPACE
from sde.errors import ConfigError, InputError
from sde.services.access import decide_access
from sde.services.extract import extract_dir, read_manifest
from sde.services.home import Home, lake_environment, open_home
from sde.services.wiring import control_plane, policy_engine
from sde.workspace.service import (
    EXTRACT_ENV,
    OUTPUTS_ENV,
    extract_location,
    from_environment,
    required_folder,
    service_mode,
)

__all__ = [
    "check_release",
    "connect",
    "outputs_dir",
    "request_release",
    "save_output",
    "scratch_dir",
    "stats",
]

REFUSED = "workspace.refused"

_OUTPUT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}\.csv$")


def _home(home: str | Path | Home | None) -> Home:
    if isinstance(home, Home):
        return home
    return open_home(
        Path(home or os.environ.get("SDE_HOME") or ".sde"),
        lake_environment=lake_environment(os.environ),
    )


def _user(user: str | None) -> str:
    return user or os.environ.get("SDE_USER") or getpass.getuser()


def _project(project: str | None) -> str:
    chosen = project or os.environ.get("SDE_PROJECT")
    if not chosen:
        raise InputError(
            "which project? give connect(project) or set SDE_PROJECT (a workspace session "
            "sets it for you)"
        )
    return chosen


def connect(
    project: str | None = None,
    *,
    home: str | Path | Home | None = None,
    user: str | None = None,
    memory_limit: str = "2GB",
    threads: int = 2,
) -> GuardedConnection:
    """A locked-down DuckDB connection over ``project``'s extract (``SDE_PROJECT`` when not
    given), if policy allows. Files may be read and written under ``con.scratch`` only."""
    if service_mode(home):
        return _connect_service(project, user, memory_limit=memory_limit, threads=threads)
    the_home = _home(home)
    person = _user(user)
    project = _project(project)
    with control_plane(the_home) as store:
        decide_access(
            store,
            policy_engine(the_home, audit=store.audit, actor=person),
            person_id=person,
            project_id=project,
            action=OPEN_WORKSPACE,
            today=dt.datetime.now(dt.UTC).date(),
        ).require(f"workspace for {person} on project {project}")
    manifest = read_manifest(the_home, project)
    base = extract_dir(the_home, project)
    tables = {name: base / name for name in manifest.tables}
    versions = {name: t.version for name, t in manifest.tables.items()}
    scratch = scratch_dir(project, home=the_home, user=person)
    con = locked_connection(
        tables,
        versions=versions,
        memory_limit=memory_limit,
        threads=threads,
        scratch=scratch,
    )
    return GuardedConnection(
        con, scratch=scratch, on_refusal=_audit_refusal(the_home, person, project)
    )


def _session_scope(project: str | None, user: str | None) -> None:
    """In service mode the token names the person and the project: refuse another one
    asked for by name, rather than silently working as the token's."""
    for given, variable, what in (
        (project, "SDE_PROJECT", "project"),
        (user, "SDE_USER", "person"),
    ):
        session = os.environ.get(variable)
        if given and session and given != session:
            raise InputError(f"this session is for {what} {session}, not {given}")


def _connect_service(
    project: str | None, user: str | None, *, memory_limit: str, threads: int
) -> GuardedConnection:
    _session_scope(project, user)
    extract = extract_location(os.environ)
    scratch = scratch_dir(project, user=user)
    service = from_environment()
    person, granted, versions = service.open()
    for given, got, what in ((project, granted, "project"), (user, person, "person")):
        if given and given != got:
            raise InputError(f"this session's token is for {what} {got}, not {given}")
    if isinstance(extract, Path) and not extract.is_dir():
        raise ConfigError(f"{EXTRACT_ENV} ({extract}) is not a folder")
    tables = {name: extract / name for name in versions}
    missing = sorted(name for name, path in tables.items() if not _is_table(path))
    if missing:
        raise ConfigError(
            f"the extract folder {EXTRACT_ENV} ({extract}) lacks table(s) {', '.join(missing)}"
        )
    con = locked_connection(
        tables,
        versions=versions,
        memory_limit=memory_limit,
        threads=threads,
        scratch=scratch,
    )
    return GuardedConnection(con, scratch=scratch, on_refusal=service.record_refusal)


def _is_table(path: Location) -> bool:
    if isinstance(path, RemoteTable):
        return delta.exists(path)
    return path.is_dir()


def _audit_refusal(home: Home, person: str, project: str) -> Callable[[Refusal], None]:
    """Write a refusal to the audit log: who, which project, which rule; never the SQL."""

    def record(refusal: Refusal) -> None:
        with control_plane(home) as store:
            store.audit.append(
                AuditEntry(
                    person, REFUSED, f"project:{project}", {"project": project, **refusal.details()}
                )
            )

    return record


def outputs_dir(project: str | None = None, *, home: str | Path | Home | None = None) -> Path:
    """The project's outputs folder: where tables wait to be asked for release
    (``SDE_OUTPUTS`` in service mode)."""
    if service_mode(home):
        _session_scope(project, None)
        path = Path(required_folder(OUTPUTS_ENV)).absolute()
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = _home(home).project_outputs(_project(project))
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_output(
    table: pd.DataFrame,
    name: str,
    *,
    project: str | None = None,
    home: str | Path | Home | None = None,
) -> Path:
    """Write a table as CSV to the project's outputs folder, ready for a release request."""
    if not service_mode(home):
        project = _project(project)
    if not _OUTPUT_NAME.match(name):
        raise InputError("output names are plain file names ending in .csv")
    path = outputs_dir(project, home=home) / name
    table.to_csv(path, index=False)
    return path


from sde.workspace import stats  # noqa: E402  (re-exported: ws.stats.crosstab(...))
from sde.workspace.release import check_release, request_release  # noqa: E402
from sde.workspace.scratch import scratch_dir  # noqa: E402
