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
@home_option
def upgrade_command(url_env: str | None, home_dir: Path | None) -> None:
    """Apply the control database's migrations (Alembic) up to the newest schema.

    Idempotent: a database already at the newest schema is left as it is."""
    from sde.adapters.sql import upgrade

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
