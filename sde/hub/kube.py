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
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from kubespawner import KubeSpawner  # type: ignore[import-untyped]
from traitlets import Float, Unicode

from sde.adapters.kubernetes import KubeApi, WorkspaceCluster
from sde.adapters.kubespawner import configure_kubespawner
from sde.domain.workspaces import PodSettings
from sde.hub.spawner import ProjectOptions, chosen_project, open_sde_home, session_env


def pod_settings(sde_home: str) -> PodSettings:
    """The ``workspaces:`` section of the home's settings."""
    return PodSettings.from_mapping(open_sde_home(sde_home).settings.extra.get("workspaces"))


def open_project_objects(cluster: WorkspaceCluster, project_id: str) -> None:
    """The namespace (restricted, default-deny) and the project's NetworkPolicy."""
    cluster.ensure_namespace()
    cluster.open_project(project_id)


class SdeKubeSpawner(ProjectOptions, KubeSpawner):  # type: ignore[misc]
    """A pod for one person on one project."""

    sde_home = Unicode(help="The sde home (state directory) the hub uses.").tag(config=True)
    sde_api_url = Unicode(
        help="The sde service as the pods reach it (e.g. http://sde.sde-services:8800/"
        "services/airlock); required."
    ).tag(config=True)
    token_hours = Float(12.0, help="How long a session's sde token lasts.").tag(config=True)

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        home = open_sde_home(self.sde_home)
        env.update(
            session_env(
                home, str(self.user.name), chosen_project(self), self.sde_api_url, self.token_hours
            )
        )
        return env

    def sde_cluster(self, settings: PodSettings) -> WorkspaceCluster:
        """The cluster this hub runs in, as its service account."""
        return WorkspaceCluster(KubeApi.in_cluster(os.environ), settings)

    async def start(self) -> Any:
        project = chosen_project(self)
        settings = pod_settings(self.sde_home)
        configure_kubespawner(self, settings, project_id=project, person_id=str(self.user.name))
        cluster = self.sde_cluster(settings)
        try:
            await asyncio.to_thread(open_project_objects, cluster, project)
        finally:
            cluster.api.close()
        return await super().start()
