"""``sde web link / serve``: the output checkers' and researchers' web page."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import click

from sde.cli import home_option, load_home, main
from sde.domain.encoding import is_loopback
from sde.errors import InputError

DEFAULT_PORT = 8800


@main.group()
def web() -> None:
    """The airlock's web page: sign-in links and the server."""


@web.command("link")
@click.option("--person", "person_id", required=True, help="Who the link signs in.")
@click.option(
    "--base-url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="Where the page is served.",
)
@click.option(
    "--minutes",
    type=click.IntRange(1, 24 * 60),
    default=15,
    show_default=True,
    help="How long the link works (it works once).",
)
@home_option
def link_command(person_id: str, base_url: str, minutes: int, home_dir: Path | None) -> None:
    """Print a one-time sign-in link for PERSON (works once, for --minutes)."""
    from sde.services.wiring import control_plane
    from sde.web.auth import WebAuth

    home = load_home(home_dir)
    with control_plane(home) as store:
        store.get_person(person_id)  # NotFound: no link for someone who does not exist
    if not base_url.startswith(("http://", "https://")):
        raise InputError("--base-url must start with http:// or https://")
    token = WebAuth(home.master_key()).link_token(person_id, dt.datetime.now(dt.UTC), minutes)
    click.echo(f"{base_url.rstrip('/')}/signin?token={token}")


@web.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-loopback --host (put TLS in front of it).",
)
@click.option(
    "--hub",
    "behind_hub",
    is_flag=True,
    help="Run as a JupyterHub service: sign in through the hub, serve under its prefix "
    "(from the JUPYTERHUB_* variables the hub sets; `sde serve` starts it so).",
)
@home_option
def serve_command(
    host: str, port: int, allow_remote: bool, behind_hub: bool, home_dir: Path | None
) -> None:
    """Serve the web page (uvicorn) on HOST:PORT, loopback only unless --allow-remote."""
    base = ""
    hub = None
    if behind_hub:
        from sde.web.hub import HubSignIn

        host, port, base = hub_service_address(os.environ)
        hub = HubSignIn.from_environment()
    if not is_loopback(host) and not allow_remote:
        raise InputError(
            f"refusing to listen on {host}, which is not a loopback address; "
            "pass --allow-remote to serve other machines (behind TLS)"
        )
    import uvicorn

    from sde.web.app import create_app

    home = load_home(home_dir)
    app = create_app(home, base=base, hub=hub)
    click.echo(f"serving the airlock page on http://{host}:{port}{base}/ (Ctrl-C stops)")
    # No access log: a sign-in link's token (or an OAuth code) is in its URL.
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False)


def hub_service_address(environ: Mapping[str, str]) -> tuple[str, int, str]:
    """``(host, port, path prefix)`` of a hub-managed service, from ``JUPYTERHUB_SERVICE_URL``
    and ``JUPYTERHUB_SERVICE_PREFIX``."""
    url = environ.get("JUPYTERHUB_SERVICE_URL", "")
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    parsed = urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
        raise InputError("--hub needs JUPYTERHUB_SERVICE_URL (http://host:port) from the hub")
    if not prefix.startswith("/services/"):
        raise InputError("--hub needs JUPYTERHUB_SERVICE_PREFIX (/services/NAME/) from the hub")
    return parsed.hostname, parsed.port, prefix.rstrip("/")


REGISTER_PORT = 8801
"""``sde web register``'s port when it runs on its own."""


def register_link(given: str | None, behind_hub: bool) -> str:
    """Where the patient's page links to the public register: ``given`` (an http(s)
    address or a path on the same site), else the hub's register service behind the hub,
    else ``sde web register`` on its own default address."""
    if given is None:
        return "/services/register/" if behind_hub else f"http://127.0.0.1:{REGISTER_PORT}/"
    parts = urlsplit(given)
    same_site = given.startswith("/") and not given.startswith("//")
    if same_site or (parts.scheme in ("http", "https") and parts.netloc):
        return given
    raise InputError("--register-url must be an http(s) address or a path starting with /")


def service_address(host: str, port: int, behind_hub: bool) -> tuple[str, int, str]:
    """``(host, port, path prefix)`` to listen on: the hub's when run as its service;
    refused unless a loopback address."""
    base = ""
    if behind_hub:
        host, port, base = hub_service_address(os.environ)
    if not is_loopback(host):
        raise InputError(f"refusing to listen on {host}, which is not a loopback address")
    return host, port, base


@web.command("register")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=REGISTER_PORT, show_default=True)
@click.option(
    "--hub",
    "behind_hub",
    is_flag=True,
    help="Run as a JupyterHub service (address and prefix from the JUPYTERHUB_* variables).",
)
@click.option("--folder", type=click.Path(path_type=Path), default=None, help="The built register.")
@home_option
def register_command(
    host: str, port: int, behind_hub: bool, folder: Path | None, home_dir: Path | None
) -> None:
    """Serve the public register (built by `sde register build`) to anyone, no sign-in."""
    import uvicorn

    from sde.web.register_site import register_app

    host, port, base = service_address(host, port, behind_hub)
    home = load_home(home_dir, check_lake=False)  # a folder of the home, never the lake
    from sde.services.register import register_folder

    app = register_app(folder or register_folder(home), base=base)
    click.echo(f"serving the public register on http://{host}:{port}{base}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False)


@web.command("patient")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8802, show_default=True)
@click.option(
    "--hub",
    "behind_hub",
    is_flag=True,
    help="Run as a JupyterHub service (address and prefix from the JUPYTERHUB_* variables); "
    "the client address for the lock-out is then the one the hub's proxy saw.",
)
@click.option(
    "--register-url",
    default=None,
    help="Where the page links to the public register (default: the hub's register service "
    f"with --hub, else http://127.0.0.1:{REGISTER_PORT}/, `sde web register`'s address).",
)
@home_option
def patient_command(
    host: str, port: int, behind_hub: bool, register_url: str | None, home_dir: Path | None
) -> None:
    """Serve the patient's record page: a patient signs in (NHS number, date of birth and
    postcode), sees where their record was used and changes their choices. Public: no
    JupyterHub sign-in. Every sign-in, view and change is audited."""
    import uvicorn

    from sde.web.patient_oidc import PatientOIDC, patient_oidc_settings
    from sde.web.patient_site import patient_app

    host, port, base = service_address(host, port, behind_hub)
    register = register_link(register_url, behind_hub)
    home = load_home(home_dir)
    settings = patient_oidc_settings(home.settings.extra.get("patient_page"), os.environ)
    app = patient_app(
        home,
        base=base,
        behind_proxy=behind_hub,
        register_url=register,
        oidc=PatientOIDC(settings) if settings is not None else None,
    )
    click.echo(f"serving the patient's page on http://{host}:{port}{base}/ (Ctrl-C stops)")
    uvicorn.run(app, host=host, port=port, access_log=False, server_header=False)
