"""``sde db``: the control database itself (its schema), for operators and deployments."""

from __future__ import annotations

import os
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.errors import ConfigError


@main.group()
def db() -> None:
    """The control database: bring its schema up to date."""


@db.command("upgrade")
@click.option(
    "--database-url-env",
    "url_env",
    default=None,
    metavar="NAME",
    help="Read the database URL from this environment variable instead of the home's "
    "config.yaml (a Kubernetes Job gets it from a Secret; it is never printed).",
)
@click.option(
    "--grant-to",
    "runtime_role",
    default=None,
    metavar="ROLE",
    help="PostgreSQL: then let ROLE, which owns nothing, run sde: rows of every table, the "
    "audit log read and append only, no TRUNCATE, no DDL (so it cannot drop the audit "
    "log's triggers). Run as the tables' owner.",
)
@home_option
def upgrade_command(url_env: str | None, runtime_role: str | None, home_dir: Path | None) -> None:
    """Apply the control database's migrations (Alembic) up to the newest schema.

    Idempotent: a database already at the newest schema is left as it is. With
    ``--grant-to``, the migrating role (the owner) and the role sde runs as are two."""
    from sde.adapters.sql import grant_runtime_role, upgrade

    if url_env is not None:
        url = os.environ.get(url_env, "").strip()
        if not url:
            raise ConfigError(f"the environment variable {url_env} holds no database URL")
        where = f"the database named by ${url_env}"
    else:
        home = load_home(home_dir)
        url = home.database_url
        where = f"the control database of {home.root}"
    try:
        upgrade(url)
    except ConfigError:
        raise
    except Exception as exc:  # a driver's message may quote the URL, password included
        raise ConfigError(f"could not upgrade {where}: {type(exc).__name__}") from None
    click.echo(f"{where} is at the newest schema")
    if runtime_role is None:
        return
    try:
        statements = grant_runtime_role(url, runtime_role)
    except ConfigError:
        raise
    except Exception as exc:  # as above: never the driver's message
        raise ConfigError(
            f"could not grant {runtime_role} its privileges on {where}: {type(exc).__name__}"
        ) from None
    click.echo(
        f"{runtime_role} may run sde there ({len(statements)} grants; audit_events: "
        "read and append only)"
    )
