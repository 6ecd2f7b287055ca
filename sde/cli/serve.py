"""``sde serve``: researchers' JupyterLab workspaces behind JupyterHub."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from sde.cli import home_option, load_home, main
from sde.errors import ConfigError, SdeError

DEFAULT_PORT = 8000
_PROXY = "configurable-http-proxy"


def find_proxy(given: str | None) -> str:
    """The configurable-http-proxy to run: ``--proxy``, else on PATH, else the one
    ``SDE_SETUP_HUB=1 bash scripts/setup.sh`` installs in the repository."""
    if given:
        return given
    found = shutil.which(_PROXY)
    if found:
        return found
    repo = Path(__file__).resolve().parents[2]
    built = repo / ".build" / "node" / "node_modules" / ".bin" / _PROXY
    if built.exists():
        return str(built)
    raise ConfigError(
        f"{_PROXY} not found: install it (SDE_SETUP_HUB=1 bash scripts/setup.sh) or pass --proxy"
    )


def _jupyterhub() -> str:
    beside = Path(sys.executable).parent / "jupyterhub"
    if beside.exists():
        return str(beside)
    found = shutil.which("jupyterhub")
    if not found:
        raise ConfigError("jupyterhub is not installed in this environment")
    return found


@main.command()
@click.option("--port", type=click.IntRange(1, 65533), default=DEFAULT_PORT, show_default=True)
@click.option("--ip", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--allow-remote", is_flag=True, help="Allow a non-loopback --ip (put TLS in front of it)."
)
@click.option("--proxy", default=None, help=f"Path to {_PROXY} (default: found).")
@click.option(
    "--link",
    "link_person",
    default=None,
    help="Also print a one-time sign-in token for this person.",
)
@click.option(
    "--guard-interval",
    type=click.FloatRange(0.5, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between the session guard's checks (it stops workspaces policy no "
    "longer allows).",
)
@click.option(
    "--spawner",
    type=click.Choice(["local", "kubernetes"]),
    default="local",
    show_default=True,
    help="Where sessions run: local processes (no isolation; one trusted machine) or pods "
    "(the hub runs inside the cluster; `workspaces:` in the config sets the pods).",
)
@click.option(
    "--pod-api-url",
    default="",
    help="With --spawner kubernetes: the sde service's URL as the pods reach it.",
)
@click.option(
    "--keep-sessions",
    is_flag=True,
    help="Leave running workspaces up when the hub stops: the next `sde serve` on this home "
    "takes them back (by default a stop ends every session).",
)
@click.option(
    "--no-start", is_flag=True, help="Write the hub's configuration, print its path, stop."
)
@home_option
def serve(
    port: int,
    ip: str,
    allow_remote: bool,
    proxy: str | None,
    link_person: str | None,
    guard_interval: float,
    spawner: str,
    pod_api_url: str,
    keep_sessions: bool,
    no_start: bool,
    home_dir: Path | None,
) -> None:
    """Run JupyterHub for researchers on IP:PORT (loopback only unless --allow-remote).

    Sign in with a person id and a one-time token (`sde web link --person ID`, or
    --link ID here); choose a project; the spawn is checked against policy."""
    from sde.hub.config import write_config_file
    from sde.services.home import open_home
    from sde.services.wiring import control_plane
    from sde.web.auth import WebAuth

    home = load_home(home_dir)
    if home.key_override is not None:
        # The hub opens the home itself, from the key file; an override would not reach it.
        raise ConfigError("sde serve reads the master key file; unset SDE_MASTER_KEY")
    open_home(home.root).master_key()  # fails closed now if the key file is missing or open
    config = write_config_file(
        home,
        port=port,
        ip=ip,
        proxy_cmd=[find_proxy(proxy)],
        allow_remote=allow_remote,
        guard_interval=guard_interval,
        spawner=spawner,
        pod_api_url=pod_api_url,
        keep_sessions=keep_sessions,
    )
    url = f"http://{ip}:{port}/hub/login"
    if link_person:
        with control_plane(home) as store:
            store.get_person(link_person)  # NotFound: no token for someone who does not exist
        token = WebAuth(home.master_key()).link_token(link_person, dt.datetime.now(dt.UTC))
        click.echo(f"sign in at {url} as {link_person} with the one-time password: {token}")
    if no_start:
        click.echo(str(config))
        return
    click.echo(f"serving workspaces on http://{ip}:{port}/ (Ctrl-C stops)")
    hub = _jupyterhub()
    os.chdir(config.parent)
    os.execv(hub, [hub, "-f", str(config)])  # noqa: S606


def _guard_once(home: Any, engine: Any, hub: Any, cluster: Any) -> None:
    from sde.services.sessions import (
        close_inactive_projects,
        remove_orphan_pods,
        stop_refused_sessions,
    )
    from sde.services.wiring import control_plane

    with control_plane(home) as store:
        stops = stop_refused_sessions(
            store, engine, hub, store.audit, today=dt.datetime.now(dt.UTC).date()
        )
        if cluster is not None:
            for project, removed in close_inactive_projects(store, cluster, store.audit).items():
                click.echo(f"closed project {project} in the cluster: {', '.join(removed)}")
            now = dt.datetime.now(dt.UTC)
            for pod in remove_orphan_pods(hub, cluster, store.audit, now=now):
                click.echo(f"removed pod {pod.name}: no session of the hub accounts for it")
    for stop in stops:
        click.echo(
            f"stopped {stop.session.person}'s workspace on {stop.session.project}: "
            + "; ".join(stop.reasons)
        )


@main.command("session-guard")
@click.option(
    "--interval",
    type=click.FloatRange(0.5, 3600),
    default=10.0,
    show_default=True,
    help="Seconds between checks.",
)
@click.option("--once", is_flag=True, help="Check once and stop.")
@click.option(
    "--kubernetes",
    is_flag=True,
    help="Also remove the pods and NetworkPolicy of projects no longer approved, and "
    "workspace pods no session of the hub accounts for (runs in the cluster, as the hub's "
    "service account).",
)
@home_option
def session_guard(interval: float, once: bool, kubernetes: bool, home_dir: Path | None) -> None:
    """Stop running workspaces the policy no longer allows (a service `sde serve` starts).

    Reads the hub's API URL and token from JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN."""
    import time

    from sde.adapters.jupyterhub_api import HubApi
    from sde.services.wiring import policy_engine

    api_url = os.environ.get("JUPYTERHUB_API_URL", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not api_url or not token:
        raise ConfigError("the session guard needs JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN")
    home = load_home(home_dir)
    hub = HubApi(api_url, token)
    engine = policy_engine(home)  # the checks are not audited; each stop is
    cluster = None
    if kubernetes:
        from sde.adapters.kubernetes import KubeApi, WorkspaceCluster
        from sde.domain.workspaces import PodSettings

        settings = PodSettings.from_mapping(home.settings.extra.get("workspaces"))
        cluster = WorkspaceCluster(KubeApi.in_cluster(os.environ), settings)
    click.echo(f"session guard: checking running workspaces every {interval:g} s")
    while True:
        try:
            _guard_once(home, engine, hub, cluster)
        except SdeError as exc:
            if once:
                raise
            # Checked again at the next interval; the hub restarts the guard if it dies.
            click.echo(f"session guard: could not check this time: {exc}", err=True)
        if once:
            return
        time.sleep(interval)
