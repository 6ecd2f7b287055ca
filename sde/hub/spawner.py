"""Starting a researcher's JupyterLab: choose a project, pass the policy, get ``SDE_*``.

:class:`SdeSpawner` shows the person's projects (``workspace_choices``): the ones the
``sde.access`` policy allows as choices, the refused ones disabled with the policy's
reasons. The chosen project reaches the session as ``SDE_PROJECT`` (with ``SDE_USER``),
so ``sde.workspace.connect()`` needs no arguments.

The session does not get the home. It gets its extract folder, a scratch folder, an
outputs folder, the sde service's URL and a token for it scoped to the person and the
project (``SDE_TOKEN``, :mod:`sde.domain.workspace_tokens`); everything else goes through
the service, which asks the policy on every call. With the lake on object storage
(``lake:`` in config.yaml), the extract is its URL (``SDE_EXTRACT=s3://…``) with the
store's plain options in the standard variables, and credentials as
``lake.workspace_credentials`` says (:func:`lake_session_env`; docs/lake.md).

:func:`pre_spawn_hook` asks the policy again at spawn time (the form is only a view; an API
spawn or a stale form must not get round it) and refuses with HTTP 403 naming every reason.
The decision is audited for the person.

``SimpleLocalProcessSpawner`` gives no isolation between users (same OS user, same file
system): a development and demonstration spawner. In a cluster,
:class:`sde.hub.kube.SdeKubeSpawner` runs each session in a pod of its own.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SimpleLocalProcessSpawner  # type: ignore[import-untyped]
from tornado.web import HTTPError
from traitlets import Float, Unicode

from sde.domain.projects import PROJECT_ID
from sde.domain.workspace_tokens import mint, token_key
from sde.errors import PolicyDenied
from sde.services.extract import extract_dir
from sde.services.home import (
    CREDENTIAL_OPTIONS,
    PLAIN_OPTIONS,
    Home,
    lake_environment,
    open_home,
)
from sde.services.wiring import control_plane, policy_engine
from sde.services.workspaces import ProjectChoice, require_workspace, workspace_choices
from sde.workspace.scratch import scratch_dir


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _today() -> dt.date:
    return _now().date()


def open_sde_home(home_dir: str) -> Home:
    if not home_dir:
        raise HTTPError(500, "the spawner has no sde home configured")
    return open_home(Path(home_dir), lake_environment=lake_environment(os.environ))


def render_choices(choices: list[ProjectChoice]) -> str:
    """The options form: one radio button per project; refused ones disabled, with the
    policy's reasons. Every value is HTML-escaped."""
    if not choices:
        return (
            "<p>You are not a member of any project, so there is no workspace to open. "
            "Ask your project's lead or an operator.</p>"
        )
    first_allowed = next((c.project_id for c in choices if c.allowed), None)
    rows = ["<fieldset><legend>Project</legend>"]
    for choice in choices:
        pid = html.escape(choice.project_id, quote=True)
        title = html.escape(choice.title)
        if choice.allowed:
            checked = " checked" if choice.project_id == first_allowed else ""
            rows.append(
                f'<div><label><input type="radio" name="project" value="{pid}"{checked}> '
                f"{title} ({pid})</label></div>"
            )
        else:
            reasons = "; ".join(html.escape(r) for r in choice.reasons) or "refused"
            rows.append(
                f'<div><label><input type="radio" name="project" value="{pid}" disabled> '
                f'{title} ({pid})</label> <span class="text-danger">not available: '
                f"{reasons}</span></div>"
            )
    rows.append("</fieldset>")
    return "\n".join(rows)


def project_from_form(form_data: dict[str, list[str]]) -> dict[str, str]:
    """``{"project": id}`` from the form; 400 unless exactly one well-formed project id."""
    values = form_data.get("project") or []
    if len(values) != 1 or not PROJECT_ID.fullmatch(values[0]):
        raise HTTPError(400, "choose one project")
    return {"project": values[0]}


class ProjectOptions:
    """The options form of a person's projects, for any spawner with ``sde_home``."""

    sde_home: str
    user: Any

    async def get_options_form(self) -> str:
        home = open_sde_home(self.sde_home)
        with control_plane(home) as store:
            choices = workspace_choices(
                store, policy_engine(home), person_id=self.user.name, today=_today()
            )
        return render_choices(choices)

    def run_options_from_form(self, form_data: dict[str, list[str]]) -> dict[str, str]:
        return project_from_form(form_data)


class SdeSpawner(ProjectOptions, SimpleLocalProcessSpawner):  # type: ignore[misc]
    """A local JupyterLab for one person on one project (no isolation: see the module)."""

    sde_home = Unicode(help="The sde home (state directory) the sessions use.").tag(config=True)
    sde_api_url = Unicode(
        help="The sde service (the airlock page's base URL) the sessions talk to."
    ).tag(config=True)
    token_hours = Float(12.0, help="How long a session's sde token lasts.").tag(config=True)
    jupyter_config_path = Unicode(
        help="A Jupyter configuration folder for the sessions (the lab's page_config.json)."
    ).tag(config=True)

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        home = open_sde_home(self.sde_home)
        person, project = str(self.user.name), chosen_project(self)
        env.update(session_env(home, person, project, self.sde_api_url, self.token_hours))
        if home.lake_settings.workspace_credentials == "per_project_secret":
            raise HTTPError(
                500,
                "lake.workspace_credentials per_project_secret needs the Kubernetes spawner",
            )
        env.update(lake_session_env(home, project))
        env["SDE_SCRATCH"] = str(scratch_dir(project, home=home, user=person))
        outputs = home.project_outputs(project)
        outputs.mkdir(parents=True, exist_ok=True)
        env["SDE_OUTPUTS"] = str(outputs)
        if self.jupyter_config_path:
            env["JUPYTER_CONFIG_PATH"] = self.jupyter_config_path
        return env


def session_env(
    home: Home, person: str, project: str, api_url: str, hours: float
) -> dict[str, str]:
    """What every session gets, wherever it runs: who, which project, the sde service and
    a token for it scoped to this person and project (not the home, not the master key)."""
    if not api_url:
        raise HTTPError(500, "the spawner has no sde service URL configured")
    token = mint(
        token_key(home.master_key()), person=person, project=project, now=_now(), hours=hours
    )
    return {
        "SDE_USER": person,
        "SDE_PROJECT": project,
        "SDE_API_URL": api_url,
        "SDE_TOKEN": token,
    }


def lake_session_env(home: Home, project: str) -> dict[str, str]:
    """Where the session's extract is. A local lake: ``SDE_EXTRACT``, the folder. A lake on
    object storage: ``SDE_EXTRACT``, the extract's URL, and the store's plain options
    (endpoint, region, ...) under their own names (``AWS_ENDPOINT_URL``, ...); the
    credentials only with ``lake.workspace_credentials: inherit`` (the service's own; a
    development setting). With ``none`` the session's platform identity reads the store;
    with ``per_project_secret`` the pod gets them from the project's Secret
    (:func:`lake_workspace_secret`)."""
    extract = extract_dir(home, project)
    if isinstance(extract, Path):
        return {"SDE_EXTRACT": str(extract)}
    store = home.lake_settings.store
    assert store is not None
    passed = PLAIN_OPTIONS[store]
    if home.lake_settings.workspace_credentials == "inherit":
        passed = passed | CREDENTIAL_OPTIONS[store]
    env = {"SDE_EXTRACT": extract.uri}
    env.update({k: v for k, v in extract.storage_options.items() if k in passed})
    return env


def lake_workspace_secret(home: Home, project: str) -> str | None:
    """The Kubernetes Secret holding ``project``'s read-only lake credentials (keys named
    as the store's variables, e.g. ``AWS_ACCESS_KEY_ID``), with
    ``lake.workspace_credentials: per_project_secret``; None otherwise."""
    lake = home.lake_settings
    if lake.workspace_credentials != "per_project_secret" or lake.project_credentials is None:
        return None
    return lake.project_credentials.replace("{project}", project)


def chosen_project(spawner: Any) -> str:
    """The project in ``spawner.user_options``; 403 when none (or a malformed one)."""
    options = spawner.user_options or {}
    project = options.get("project") if isinstance(options, dict) else None
    if isinstance(project, list) and len(project) == 1:
        project = project[0]
    if not isinstance(project, str) or not PROJECT_ID.fullmatch(project):
        raise HTTPError(403, "no workspace without a project: choose one")
    return project


def pre_spawn_hook(spawner: Any) -> None:
    """Refuse (HTTP 403, naming every reason) unless the policy lets the person open a
    workspace on the chosen project today. The decision is audited."""
    person = str(spawner.user.name)
    project = chosen_project(spawner)
    home = open_sde_home(str(spawner.sde_home))
    with control_plane(home) as store:
        engine = policy_engine(home, audit=store.audit, actor=person)
        try:
            require_workspace(store, engine, person_id=person, project_id=project, today=_today())
        except PolicyDenied as exc:
            reasons = "; ".join(exc.reasons) or "refused by policy"
            spawner.log.warning("workspace refused for %s on %s: %s", person, project, reasons)
            raise HTTPError(403, f"workspace refused: {reasons}") from None
    spawner.log.info("workspace allowed for %s on %s", person, project)
