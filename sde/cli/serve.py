"""``sde serve``: researchers' JupyterLab workspaces behind JupyterHub."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.errors import ConfigError

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
    "--no-start", is_flag=True, help="Write the hub's configuration, print its path, stop."
)
@home_option
def serve(
    port: int,
    ip: str,
    allow_remote: bool,
    proxy: str | None,
    link_person: str | None,
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
        home, port=port, ip=ip, proxy_cmd=[find_proxy(proxy)], allow_remote=allow_remote
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
