"""A throwaway PostgreSQL server for the SQL tests.

``start_server()`` runs ``initdb`` into a new directory under the system temp dir, starts
the server listening on a Unix socket in that directory only (no TCP port), with
durability switched off for speed (``fsync``, ``synchronous_commit``,
``full_page_writes``) and trust authentication, and returns a ``Server`` whose ``url``
is a SQLAlchemy URL for its ``postgres`` database. ``Server.stop()`` kills it
(``pg_ctl stop -m immediate``) and removes the directory.

PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` system
user and every server command runs through ``runuser -u postgres --``; otherwise as the
current user. The server binaries come from ``/usr/lib/postgresql/<version>/bin`` (Debian),
else from ``PATH``; ``SDE_SETUP_POSTGRES=1 bash scripts/setup.sh`` installs them.

``fresh_database(admin_url)`` creates an empty database for one test and drops it after.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

SETUP_HINT = "run `SDE_SETUP_POSTGRES=1 bash scripts/setup.sh` to install them"
SYSTEM_USER = "postgres"
SUPERUSER = "sde"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
SETTINGS = {
    "listen_addresses": "''",  # Unix socket only: nothing to collide with, nothing exposed
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "off",
    "max_connections": "50",
    "shared_buffers": "32MB",
}


class PostgresUnavailable(RuntimeError):
    """No server binaries, or the throwaway server would not start."""


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: the newest Debian version, else PATH."""

    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    debian = [
        p.parent for p in DEBIAN_BINARIES.glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()
    ]
    if debian:
        return max(debian, key=version)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


@dataclass
class Server:
    """A running throwaway cluster; ``url`` connects to its ``postgres`` database."""

    root: Path
    bindir: Path
    run_as: str | None
    url: str
    start_seconds: float
    _stopped: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def stop(self) -> None:
        """Kill the server and remove its directory. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        try:
            _run(self, "pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        except PostgresUnavailable:
            pass  # already gone (or never fully started): the directory goes regardless
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _command(bindir: Path, run_as: str | None, program: str, *args: str) -> list[str]:
    command = [str(bindir / program), *args]
    return ["runuser", "-u", run_as, "--", *command] if run_as else command


def _run(server: Server, program: str, *args: str) -> None:
    _run_raw(server.bindir, server.run_as, server.root, program, *args)


def _run_raw(bindir: Path, run_as: str | None, root: Path, program: str, *args: str) -> None:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PGDATA", None)
    result = subprocess.run(
        _command(bindir, run_as, program, *args),
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        log = root / "server.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise PostgresUnavailable(
            f"{program} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}{tail}"
        )


@dataclass(frozen=True)
class Tls:
    """A TLS listener on 127.0.0.1:``port`` besides the socket, with this certificate and
    key (PEM files; copied into the cluster's folder, the key 0600 as PostgreSQL wants)."""

    certificate: Path
    key: Path
    port: int


def start_server(tls: Tls | None = None) -> Server:
    """Start a throwaway cluster (about a second). Raises ``PostgresUnavailable``."""
    began = time.perf_counter()
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            f"the PostgreSQL server binaries (initdb, pg_ctl) are missing; {SETUP_HINT}"
        )
    run_as: str | None = None
    if os.geteuid() == 0:
        run_as = SYSTEM_USER
        try:
            owner = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root, and there is no {SYSTEM_USER!r} system user to run "
                f"PostgreSQL as; {SETUP_HINT}"
            ) from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root needs `runuser` (util-linux)")
    # Under /tmp rather than pytest's basetemp: the postgres user must be able to reach it,
    # and a Unix socket path must stay under about 100 characters.
    root = Path(tempfile.mkdtemp(prefix="sde-pg-"))
    if run_as:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    server = Server(root, bindir, run_as, url="", start_seconds=0.0)
    try:
        _run(
            server,
            "initdb",
            "-D",
            str(server.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = dict(SETTINGS)
        if tls is not None:
            for name, source in (("server.crt", tls.certificate), ("server.key", tls.key)):
                shutil.copyfile(source, root / name)
                os.chmod(root / name, 0o600)
                if run_as:
                    os.chown(root / name, owner.pw_uid, owner.pw_gid)
            settings.update(
                listen_addresses="'127.0.0.1'",
                port=str(tls.port),
                ssl="on",
                ssl_cert_file=f"'{root / 'server.crt'}'",
                ssl_key_file=f"'{root / 'server.key'}'",
            )
        options = [f"-c {name}={value}" for name, value in settings.items()]
        options.append(f"-c unix_socket_directories='{root}'")
        _run(
            server,
            "pg_ctl",
            "start",
            "-D",
            str(server.data),
            "-l",
            str(root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
        )
    except BaseException:
        server.stop()
        raise
    atexit.register(server.stop)  # belt and braces: the session fixture stops it first
    server.url = sa.engine.URL.create(
        "postgresql+psycopg",
        username=SUPERUSER,
        database="postgres",
        port=tls.port if tls is not None else None,  # the socket's name carries the port
        query={"host": str(root)},
    ).render_as_string(hide_password=False)
    server.start_seconds = time.perf_counter() - began
    return server


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """The URL of a new, empty database on the server at ``admin_url``, dropped after."""
    admin_parsed = sa.engine.make_url(admin_url)
    name = f"sde_test_{secrets.token_hex(6)}"
    admin = sa.create_engine(admin_parsed, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin_parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextlib.contextmanager
def runtime_role_database(admin_url: str, grant: Callable[[str, str], object]) -> Iterator[str]:
    """A new database owned by a new role, migrated by that owner, whose URL is that of a
    second new role which owns nothing and has only what ``grant(owner_url, role)`` gives
    it (sde's ``grant_runtime_role``). Database and roles are dropped after."""
    from sde.adapters.sql import upgrade

    token = secrets.token_hex(4)
    owner, runtime = f"sde_owner_{token}", f"sde_app_{token}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            for role in (owner, runtime):
                conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        with fresh_database(admin_url) as url:
            parsed = sa.engine.make_url(url)
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{parsed.database}" OWNER TO {owner}')
            owner_url = parsed.set(username=owner).render_as_string(hide_password=False)
            upgrade(owner_url)
            grant(owner_url, runtime)
            yield parsed.set(username=runtime).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            for role in (owner, runtime):
                conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()
