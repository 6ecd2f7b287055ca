"""The hub's settings for one sde home.

:func:`hub_config` returns a ``traitlets`` :class:`~traitlets.config.Config`; the
``jupyterhub_config.py`` that ``sde serve`` writes under ``<home>/hub/`` merges it into
``c``. What it sets:

- the hub, its proxy and its API listen on ``ip`` (127.0.0.1; another address only with
  ``allow_remote=True``): public ``port``, proxy API ``port + 1``, hub ``port + 2`` unless
  given; its services on 127.0.0.1: the airlock page ``port + 3``, the public register
  ``port + 4``, the patient's page ``port + 5``;
- the hub's database (``jupyterhub.sqlite``), cookie secret and proxy pid file live in
  ``<home>/hub/``, the first two created 0600 before the hub starts;
- :class:`~sde.hub.auth.SdeAuthenticator` and :class:`~sde.hub.spawner.SdeSpawner` over
  the home, the spawn check :func:`~sde.hub.spawner.pre_spawn_hook`, JupyterLab
  (``/lab``) as the default page, each person's working directory in
  ``<home>/hub/users/<person>``; ``--allow-root`` for the single-user server when the hub
  runs as root; sessions stopped when their person signs out, and when the hub stops
  unless ``keep_sessions`` (then the next hub takes them back); people re-checked before each
  spawn and every five minutes, on their servers' requests too (``auth_refresh_strict``);
- the hub-managed services (airlock page, register, patient's page, session guard) get
  the lake's ``SDE_LAKE_*`` variables the home was opened with (``home.lake_environment``),
  since a managed service gets only the environment it is given: with the lake on object
  storage they open the home with the store's credentials, as the hub does. The written
  ``jupyterhub_config.py`` holds no credential: it opens the home with the hub process's
  own ``SDE_LAKE_*`` variables (:func:`~sde.services.home.lake_environment`).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from traitlets.config import Config

from sde.domain.encoding import is_loopback
from sde.errors import ConfigError
from sde.hub.auth import SdeAuthenticator
from sde.hub.lab import server_args, write_lab_config
from sde.hub.oidc import HubAuthSettings, SdeOIDCAuthenticator, oidc_config
from sde.hub.spawner import SdeSpawner, pre_spawn_hook
from sde.services.home import Home

HUB_DIR = "hub"
DB_FILE = "jupyterhub.sqlite"
COOKIE_SECRET_FILE = "jupyterhub_cookie_secret"  # noqa: S105 (a file name)
CONFIG_FILE = "jupyterhub_config.py"
AIRLOCK_SERVICE = "airlock"
REGISTER_SERVICE = "register"
PATIENT_SERVICE = "patient"
GUARD_SERVICE = "session-guard"
SPAWNERS = ("local", "kubernetes")


def _private_file(path: Path, content: str = "") -> None:
    """Create ``path`` 0600 (left as it is, but made 0600, when it exists)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(content)


def hub_dir(home: Home) -> Path:
    """``<home>/hub/`` (0700), with the hub's database and cookie secret (0600)."""
    folder = home.root / HUB_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    (folder / "users").mkdir(mode=0o700, exist_ok=True)
    _private_file(folder / DB_FILE)  # an empty file is an empty SQLite database
    _private_file(folder / COOKIE_SECRET_FILE, secrets.token_hex(32) + "\n")
    return folder


def sde_command() -> list[str]:
    """The ``sde`` command of this Python's environment."""
    beside = Path(sys.executable).parent / "sde"
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-c", "from sde.cli import main; main()"]


def singleuser_command() -> list[str]:
    """``jupyterhub-singleuser`` from this Python's environment when it is there."""
    beside = Path(sys.executable).parent / "jupyterhub-singleuser"
    return [str(beside)] if beside.exists() else ["jupyterhub-singleuser"]


def hub_config(
    home: Home,
    *,
    port: int,
    ip: str = "127.0.0.1",
    proxy_cmd: Sequence[str] = ("configurable-http-proxy",),
    proxy_api_port: int | None = None,
    hub_port: int | None = None,
    airlock_port: int | None = None,
    allow_remote: bool = False,
    guard_interval: float = 10.0,
    spawner: str = "local",
    pod_api_url: str = "",
    keep_sessions: bool = False,
) -> Config:
    """JupyterHub's configuration for researchers' workspaces over ``home``.
    ``keep_sessions``: the hub leaves running servers up when it stops, and the next hub
    (same database) takes them back, so a restart does not end researchers' sessions."""
    if not is_loopback(ip) and not allow_remote:
        raise ConfigError(
            f"refusing to listen on {ip}, which is not a loopback address; "
            "allow remote access explicitly (and put TLS in front of it)"
        )
    folder = hub_dir(home)
    c = Config()
    c.JupyterHub.ip = ip
    c.JupyterHub.port = port
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub_port or port + 2
    c.JupyterHub.db_url = f"sqlite:///{folder / DB_FILE}"
    c.JupyterHub.cookie_secret_file = str(folder / COOKIE_SECRET_FILE)
    c.JupyterHub.authenticator_class = SdeAuthenticator
    auth = HubAuthSettings.from_mapping(home.settings.extra.get("hub"))
    if auth.oidc is not None:
        c.JupyterHub.authenticator_class = SdeOIDCAuthenticator
        for name, value in oidc_config(
            auth.oidc,
            callback_url=f"http://{ip}:{port}/hub/oauth_callback",
            sde_home=str(home.root),
        ).items():
            setattr(c.SdeOIDCAuthenticator, name, value)
    if spawner not in SPAWNERS:
        raise ConfigError(f"spawner must be one of {', '.join(SPAWNERS)}, not {spawner!r}")
    c.JupyterHub.spawner_class = SdeSpawner
    c.JupyterHub.shutdown_on_logout = True
    c.JupyterHub.cleanup_servers = not keep_sessions
    c.ConfigurableHTTPProxy.command = list(proxy_cmd)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port or port + 1}"
    c.ConfigurableHTTPProxy.pid_file = str(folder / "jupyterhub-proxy.pid")
    c.SdeAuthenticator.sde_home = str(home.root)
    # Re-check people (gone? banned?) before each spawn and every 5 minutes, and refuse even
    # token-authenticated requests (a running session's) once the check fails.
    c.Authenticator.refresh_pre_spawn = True
    c.Authenticator.auth_refresh_age = 300
    c.Authenticator.auth_refresh_strict = True
    c.SdeSpawner.sde_home = str(home.root)
    c.SdeSpawner.sde_api_url = (
        f"http://127.0.0.1:{airlock_port or port + 3}/services/{AIRLOCK_SERVICE}"
    )
    c.SdeSpawner.home_dir_template = str(folder / "users" / "{username}")
    c.Spawner.pre_spawn_hook = pre_spawn_hook
    c.Spawner.default_url = "/lab"
    c.Spawner.cmd = singleuser_command()
    c.Spawner.ip = "127.0.0.1"
    c.Spawner.args = [*server_args(), *(["--allow-root"] if os.getuid() == 0 else [])]
    write_lab_config(folder / "jupyter")
    c.SdeSpawner.jupyter_config_path = str(folder / "jupyter")
    home_arg = ["--home", str(home.root)]

    # A managed service gets only the environment it is given: the lake's variables, so
    # it can open a home whose lake is on object storage (none for a local lake), for the
    # services that read the lake only.
    def lake_env() -> dict[str, dict[str, str]]:
        lake = dict(home.lake_environment)  # each service its own copy
        return {"environment": lake} if lake else {}

    c.JupyterHub.services = [
        {
            # The airlock page, signed in to through the hub (OAuth): one sign-in.
            "name": AIRLOCK_SERVICE,
            "url": f"http://127.0.0.1:{airlock_port or port + 3}",
            "command": [*sde_command(), "web", "serve", "--hub", *home_arg],
            "oauth_no_confirm": True,
            "display": True,
            **lake_env(),
        },
        {
            # The public register: anyone may read it, no sign-in. It serves a folder of
            # the home, never the lake: no lake credentials.
            "name": REGISTER_SERVICE,
            "url": f"http://127.0.0.1:{port + 4}",
            "command": [*sde_command(), "web", "register", "--hub", *home_arg],
            "display": True,
        },
        {
            # The patient's page: public, its own sign-in (never the hub's).
            "name": PATIENT_SERVICE,
            "url": f"http://127.0.0.1:{port + 5}",
            "command": [*sde_command(), "web", "patient", "--hub", *home_arg],
            "display": False,
            **lake_env(),
        },
        {
            # Stops running workspaces that policy no longer allows.
            "name": GUARD_SERVICE,
            "command": [
                *sde_command(),
                "session-guard",
                "--interval",
                f"{guard_interval:g}",
                *(["--kubernetes"] if spawner == "kubernetes" else []),
                *home_arg,
            ],
            **lake_env(),
        },
    ]
    c.JupyterHub.load_roles = [
        {
            # Everyone signed in: their own things, and the airlock page (which decides
            # what each may see there from sde's roles).
            "name": "user",
            "scopes": ["self", f"access:services!service={AIRLOCK_SERVICE}"],
        },
        {
            "name": "sde-session-guard",
            "description": "See who has a workspace running, and stop it",
            "scopes": ["list:users", "read:users", "read:servers", "delete:servers"],
            "services": [GUARD_SERVICE],
        },
    ]
    if spawner == "kubernetes":
        from sde.hub.kube import SdeKubeSpawner

        c.JupyterHub.spawner_class = SdeKubeSpawner
        c.SdeKubeSpawner.sde_home = str(home.root)
        # The image's own single-user server, not this machine's path to it.
        c.SdeKubeSpawner.cmd = ["jupyterhub-singleuser"]
        # The pod's own address, not loopback (c.Spawner.ip above): the proxy and the hub
        # reach the server from other pods; the project's NetworkPolicy confines who may.
        c.SdeKubeSpawner.ip = "0.0.0.0"  # noqa: S104
        # Where pods reach the sde service; a spawn without it fails (closed).
        c.SdeKubeSpawner.sde_api_url = pod_api_url
    return c


def write_config_file(
    home: Home,
    *,
    port: int,
    ip: str,
    proxy_cmd: Sequence[str],
    allow_remote: bool = False,
    proxy_api_port: int | None = None,
    hub_port: int | None = None,
    guard_interval: float = 10.0,
    spawner: str = "local",
    pod_api_url: str = "",
    keep_sessions: bool = False,
) -> Path:
    """Write ``<home>/hub/jupyterhub_config.py`` (0600) that loads :func:`hub_config`;
    checked by building the configuration once first."""
    settings = {
        "port": port,
        "ip": ip,
        "proxy_cmd": list(proxy_cmd),
        "allow_remote": allow_remote,
        "proxy_api_port": proxy_api_port,
        "hub_port": hub_port,
        "guard_interval": guard_interval,
        "spawner": spawner,
        "pod_api_url": pod_api_url,
        "keep_sessions": keep_sessions,
    }
    # Built once here, so a bad setting fails now rather than inside the hub.
    hub_config(
        home,
        port=port,
        ip=ip,
        proxy_cmd=proxy_cmd,
        allow_remote=allow_remote,
        proxy_api_port=proxy_api_port,
        hub_port=hub_port,
        guard_interval=guard_interval,
        spawner=spawner,
        pod_api_url=pod_api_url,
        keep_sessions=keep_sessions,
    )
    path = home.root / HUB_DIR / CONFIG_FILE
    text = (
        "# Written by `sde serve`; rewritten each time it starts. Do not edit.\n"
        "# The lake's credentials (SDE_LAKE_*) come from the hub's environment, never this file.\n"
        "import os\n"
        "from pathlib import Path\n\n"
        "from sde.hub.config import hub_config\n"
        "from sde.services.home import lake_environment, open_home\n\n"
        f"_home = open_home(Path({str(home.root)!r}), "
        "lake_environment=lake_environment(os.environ))\n"
        f"c.merge(hub_config(_home, **{settings!r}))  # noqa: F821\n"
    )
    path.unlink(missing_ok=True)
    _private_file(path, text)
    return path
