"""JupyterHub's configuration in the sde chart (mounted from a ConfigMap; `jupyterhub -f`).

It is ``sde serve --spawner kubernetes``'s configuration (``sde.hub.config.hub_config``)
with what differs inside a cluster:

- KubeSpawner works in the workspaces' namespace (``workspaces.namespace``);
- the hub's API listens on the pod's address (``hub_ip``) so workspace pods reach it, at
  the hub Service's name (``hub_connect_url``); the public proxy (configurable-http-proxy,
  started by the hub in this pod) listens on 0.0.0.0:8000 and its API stays on loopback;
- the airlock (``sde web serve --hub``) is an *external* JupyterHub service, its own
  Deployment reached at ``$SDE_AIRLOCK_URL``, with the API token from the existing Secret
  (``$SDE_AIRLOCK_API_TOKEN``); workspace pods reach it at ``$SDE_POD_API_URL``;
- JupyterHub's own state in PostgreSQL (``$SDE_HUB_DATABASE_URL``, from the existing
  Secret) when given, so running workspaces outlive a restart of the hub pod;
- the public register, the patient's page and the session guard stay hub-managed
  services on this pod's loopback, as ``sde serve`` runs them; the patient's page gets
  its OpenID Connect client secret passed on when one is set, and the managed services
  that read the lake its ``SDE_LAKE_*`` credentials when it is on object storage (the home
  is opened with them; ``hub_config`` passes them on).

Every value comes from the pod's environment, set by the chart; a missing one stops the
hub (nothing falls back to a default). Messages name variables, never their values.
"""

import os
from pathlib import Path

from sde.domain.workspaces import PodSettings
from sde.hub.config import AIRLOCK_SERVICE, PATIENT_SERVICE, hub_config
from sde.services.home import lake_environment, open_home

PUBLIC_PORT = 8000
PROXY_API_PORT = 8001
HUB_PORT = 8081
PATIENT_SECRETS = ("SDE_PATIENT_OIDC_CLIENT_SECRET", "SDE_PATIENT_OIDC_PRIVATE_KEY")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value.strip():
        raise SystemExit(f"sde chart: {name} is not set in the hub's environment")
    return value.strip()


# With the lake on object storage its credentials (SDE_LAKE_*, from the existing Secret)
# are in this pod's environment: the home is opened with them, and hub_config passes them
# to the hub-managed services that read the lake (not the public register, which serves a
# folder of the home): a managed service gets only the environment it is given.
_home = open_home(Path(_env("SDE_HOME")), lake_environment=lake_environment(os.environ))
c.merge(  # noqa: F821 -- `c` is the config JupyterHub gives this file
    hub_config(
        _home,
        port=PUBLIC_PORT,
        ip="0.0.0.0",  # noqa: S104 -- the pod's public port; NetworkPolicies confine it
        allow_remote=True,
        proxy_api_port=PROXY_API_PORT,
        hub_port=HUB_PORT,
        guard_interval=float(_env("SDE_GUARD_INTERVAL")),
        spawner="kubernetes",
        pod_api_url=_env("SDE_POD_API_URL"),
    )
)
# JupyterHub's own state: in PostgreSQL when the chart is given its URL, so running
# workspaces outlive a restart of this pod (the new hub finds their pods and puts their
# routes back); otherwise in the pod's memory-backed home, and a restart ends every
# session (cleanup_servers stops them on the way down; the session guard removes any
# left behind).
_hub_database = os.environ.get("SDE_HUB_DATABASE_URL", "").strip()
if _hub_database:
    if not _hub_database.startswith("postgresql"):
        raise SystemExit("sde chart: SDE_HUB_DATABASE_URL must name a PostgreSQL database")
    c.JupyterHub.db_url = _hub_database  # noqa: F821
    c.JupyterHub.upgrade_db = True  # noqa: F821 -- a new JupyterHub migrates its own tables
    c.JupyterHub.cleanup_servers = False  # noqa: F821
c.JupyterHub.hub_ip = "0.0.0.0"  # noqa: F821, S104
c.JupyterHub.hub_connect_url = _env("SDE_HUB_CONNECT_URL")  # noqa: F821
# KubeSpawner's own default namespace is the hub's; its pod and event watchers (and a
# restarted hub's checks of running servers) must look where sde puts the pods, the one
# namespace the hub's Role covers.
c.SdeKubeSpawner.namespace = PodSettings.from_mapping(  # noqa: F821
    _home.settings.extra.get("workspaces")
).namespace

_services = []
for _service in c.JupyterHub.services:  # noqa: F821
    if _service["name"] == AIRLOCK_SERVICE:
        _service = {
            "name": AIRLOCK_SERVICE,
            "url": _env("SDE_AIRLOCK_URL"),
            "api_token": _env("SDE_AIRLOCK_API_TOKEN"),
            "oauth_no_confirm": True,
            "display": True,
        }
    elif _service["name"] == PATIENT_SERVICE:
        _passed = {name: os.environ[name] for name in PATIENT_SECRETS if os.environ.get(name)}
        if _passed:
            _service = {
                **_service,
                "environment": {**_service.get("environment", {}), **_passed},
            }
    _services.append(_service)
c.JupyterHub.services = _services  # noqa: F821
