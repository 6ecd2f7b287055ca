"""Workspaces as pods: KubeSpawner, configured for the chosen project from sde's own pod
spec, with the project's NetworkPolicy put in place before its first pod.

At each start, :class:`SdeKubeSpawner` takes the project the person chose (the form and
``pre_spawn_hook`` are the local spawner's), sets KubeSpawner's traits from
:func:`sde.adapters.kubespawner.kubespawner_settings` (the pod ``build_pod`` makes:
non-root, read-only root, no capabilities, the extract read-only, scratch, limits), makes
sure the namespace enforces Pod Security "restricted" with its default-deny policy and
that the project's NetworkPolicy exists (``WorkspaceCluster``), then lets KubeSpawner
create the pod. The session guard removes a project's pods and policy once it is no
longer approved (``sde session-guard --kubernetes``).

With the lake on object storage (``lake:`` in config.yaml) the pod mounts no extract
volume: :func:`workspace_extract` gives ``SDE_EXTRACT`` (the extract's URL) and the
store's plain options (:func:`~sde.hub.spawner.lake_session_env`), and with
``lake.workspace_credentials: per_project_secret`` the credential variables as
``secretKeyRef`` s on the project's Secret (:func:`~sde.hub.spawner.lake_workspace_secret`);
``inherit`` is refused (the hub's own credentials never go into a pod spec), ``none``
gives no credential variables (workload identity). :func:`workspace_pod_settings` checks
that ``workspaces.object_store_egress`` names the store's addresses exactly when the lake
is remote, so the project's NetworkPolicy lets the pods reach the store and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any, Final

from kubespawner import KubeSpawner  # type: ignore[import-untyped]
from tornado.web import HTTPError
from traitlets import Float, Unicode

from sde.adapters.kubernetes import KubeApi, WorkspaceCluster
from sde.adapters.kubespawner import configure_kubespawner
from sde.domain.workspaces import PodSettings, StoreExtract
from sde.errors import ConfigError
from sde.hub.spawner import (
    ProjectOptions,
    chosen_project,
    lake_session_env,
    lake_workspace_secret,
    open_sde_home,
    session_env,
)
from sde.services.home import CREDENTIAL_OPTIONS, LAKE_ENV_PREFIX, PLAIN_OPTIONS, Home

REQUIRED_CREDENTIALS: Final[dict[str, frozenset[str]]] = {
    "s3": frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}),
}
"""Keys a project's Secret must hold (the pod does not start without them), per store.
The store's other credential keys (``CREDENTIAL_OPTIONS``) are referenced as optional:
``AWS_SESSION_TOKEN``, and Azure's and GCS's alternatives, any one of which may be the
one in use."""

INHERIT_REFUSED: Final = (
    "lake.workspace_credentials is 'inherit', which is for the local spawner only: on "
    "Kubernetes the hub's own lake credentials are never copied into a pod spec. Use "
    "per_project_secret (a read-only Secret per project) or none (workload identity)"
)


def workspace_pod_settings(home: Home) -> PodSettings:
    """The ``workspaces:`` section of the home's settings, checked against the lake: with
    the lake on object storage ``object_store_egress`` must name the store's address
    blocks (without them the pods could not reach their extract); with a local lake it
    must be empty (the project's NetworkPolicy stays as it was: no address blocks)."""
    settings = PodSettings.from_mapping(home.settings.extra.get("workspaces"))
    if home.lake_is_remote and not settings.object_store_egress:
        raise ConfigError(
            "the lake is on object storage but workspaces 'object_store_egress' is empty: "
            "the workspace pods could not reach it; give the store's address block(s) and "
            "port(s), e.g. [{cidr: 10.20.0.0/16, ports: [443]}]"
        )
    if not home.lake_is_remote and settings.object_store_egress:
        raise ConfigError(
            "workspaces 'object_store_egress' is set but the lake is on local disk: remove "
            "it (it is only for a lake on object storage)"
        )
    return settings


def workspace_extract(home: Home, project: str) -> StoreExtract | None:
    """Where ``project``'s workspace pods read their extract: None for a local lake (the
    extract volume of ``workspaces.extract``); for a lake on object storage its URL and
    the store's plain options (as :func:`~sde.hub.spawner.lake_session_env` gives a
    session) and, with ``per_project_secret``, the credential keys to take from the
    project's Secret. ``inherit`` is refused (``ConfigError``)."""
    lake = home.lake_settings
    if lake.store is None:
        return None
    if lake.workspace_credentials == "inherit":
        raise ConfigError(INHERIT_REFUSED)
    plain = lake_session_env(home, project)
    url = plain.pop("SDE_EXTRACT")
    # lake_session_env gives only plain options unless 'inherit'; checked again here.
    options = tuple(sorted((k, v) for k, v in plain.items() if k in PLAIN_OPTIONS[lake.store]))
    secret = lake_workspace_secret(home, project)
    if secret is None:
        return StoreExtract(url=url, options=options)
    keys = CREDENTIAL_OPTIONS[lake.store]
    required = REQUIRED_CREDENTIALS.get(lake.store, frozenset())
    return StoreExtract(
        url=url,
        options=options,
        secret_name=secret,
        secret_keys=tuple(sorted(keys & required)),
        optional_secret_keys=tuple(sorted(keys - required)),
    )


def extract_env(extract: StoreExtract | None) -> dict[str, Any]:
    """A pod's extract variables as KubeSpawner takes them: text values, and an EnvVar
    spec (``{"valueFrom": {"secretKeyRef": ...}}``) for each credential. Empty for a
    local lake (the pod's ``SDE_EXTRACT`` is its mount point, set by ``build_pod``)."""
    if extract is None:
        return {}
    env: dict[str, Any] = dict(extract.plain_env())
    for entry in extract.credential_env():
        env[entry["name"]] = {"valueFrom": entry["valueFrom"]}
    return env


def check_no_lake_credentials(home: Home, env: dict[str, Any]) -> None:
    """Refuse (``ConfigError``, naming variables only) if a credential value the hub
    holds for the lake (an ``SDE_LAKE_*`` credential) appears in a pod's environment:
    the last check before a pod spec is sent."""
    store = home.lake_settings.store
    if store is None:
        return
    secrets = {
        name: value
        for name, value in home.lake_environment.items()
        if name.removeprefix(LAKE_ENV_PREFIX) not in PLAIN_OPTIONS[store] and value
    }
    for variable, value in sorted(env.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        for name, secret in sorted(secrets.items()):
            if text == secret or (len(secret) >= 8 and secret in text):
                raise ConfigError(
                    f"the lake credential {name} would reach a workspace pod's environment "
                    f"(as {variable}): refused"
                )


class SdeKubeSpawner(ProjectOptions, KubeSpawner):  # type: ignore[misc]
    """A pod for one person on one project."""

    sde_home = Unicode(help="The sde home (state directory) the hub uses.").tag(config=True)
    sde_api_url = Unicode(
        help="The sde service as the pods reach it (e.g. http://sde.sde-services:8800/"
        "services/airlock); required."
    ).tag(config=True)
    token_hours = Float(12.0, help="How long a session's sde token lasts.").tag(config=True)

    def get_env(self) -> dict[str, Any]:
        env: dict[str, Any] = super().get_env()
        home = open_sde_home(self.sde_home)
        project = chosen_project(self)
        env.update(
            session_env(home, str(self.user.name), project, self.sde_api_url, self.token_hours)
        )
        try:
            env.update(extract_env(workspace_extract(home, project)))
            check_no_lake_credentials(home, env)
        except ConfigError as exc:
            raise HTTPError(500, str(exc)) from None
        return env

    def sde_configure(self) -> tuple[str, PodSettings]:
        """Set KubeSpawner's traits for the chosen project (from the pod ``build_pod``
        makes, with the extract as the lake has it); the project and the settings."""
        project = chosen_project(self)
        home = open_sde_home(self.sde_home)
        try:
            settings = workspace_pod_settings(home)
            extract = workspace_extract(home, project)
        except ConfigError as exc:
            raise HTTPError(500, str(exc)) from None
        configure_kubespawner(
            self, settings, project_id=project, person_id=str(self.user.name), extract=extract
        )
        return project, settings

    def sde_cluster(self, settings: PodSettings) -> WorkspaceCluster:
        """The cluster this hub runs in, as its service account."""
        return WorkspaceCluster(KubeApi.in_cluster(os.environ), settings)

    async def start(self) -> Any:
        project, settings = self.sde_configure()
        cluster = self.sde_cluster(settings)
        try:
            await asyncio.to_thread(open_project_objects, cluster, project)
        finally:
            cluster.api.close()
        return await super().start()


def open_project_objects(cluster: WorkspaceCluster, project_id: str) -> None:
    """The namespace (restricted, default-deny) and the project's NetworkPolicy."""
    cluster.ensure_namespace()
    cluster.open_project(project_id)
