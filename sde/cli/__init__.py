"""The ``sde`` command. The only place that reads the environment (``SDE_HOME``,
``SDE_MASTER_KEY``, the lake's ``SDE_LAKE_*``); everything below it takes plain values.

Each command group lives in a module of this package and registers itself on ``main``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from sde.errors import SdeError
from sde.services.home import (
    Home,
    init_home,
    lake_environment,
    open_home,
    parse_key_override,
)

F = TypeVar("F", bound=Callable[..., Any])


def default_home() -> Path:
    return Path(os.environ.get("SDE_HOME") or ".sde")


def home_option(func: F) -> F:
    """``--home DIR`` on every command (default ``$SDE_HOME``, else ``./.sde``)."""
    return click.option(
        "--home",
        "home_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="State directory (default: $SDE_HOME, else ./.sde).",
    )(func)


def load_home(home_dir: Path | None, *, check_lake: bool = True) -> Home:
    """Open the home named on the command line or by the environment. With a lake on
    object storage, its credentials come from the ``SDE_LAKE_*`` variables, and the store
    is listed once so that wrong credentials or an unreachable store fail here, clearly
    (not for a command that never reads the lake: ``check_lake=False``)."""
    override = os.environ.get("SDE_MASTER_KEY")
    key = parse_key_override(override) if override else None
    home = open_home(
        home_dir or default_home(),
        key_override=key,
        lake_environment=lake_environment(os.environ),
    )
    if check_lake and home.lake_is_remote:
        from sde.adapters.lake_files import check_access

        check_access(home.lake)
    return home


class SdeGroup(click.Group):
    """Shows user-facing errors as one line, without a traceback, exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SdeError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=SdeGroup)
@click.version_option(package_name="sde")
def main() -> None:
    """sde: a Secure Data Environment for linked NHS patient records."""


@main.command()
@click.option(
    "--actor",
    default=None,
    metavar="NAME",
    help="Who is acting, for the audit log (default: $SDE_USER, else your login name).",
)
@home_option
def init(actor: str | None, home_dir: Path | None) -> None:
    """Create a state directory: config, master key (0600), control database, lake. The
    audit log's first event records who created it (``home.created``)."""
    from sde.cli.people import default_actor
    from sde.services.wiring import record_home_created

    home = init_home(home_dir or default_home())
    record_home_created(home, actor or default_actor())
    click.echo(f"initialised sde home at {home.root}")


def _register() -> None:
    # Imported for their side effect of adding commands to ``main``.
    from sde.cli import (  # noqa: F401
        audit,
        board,
        db,
        deid,
        demo,
        extract,
        ingest,
        keys,
        optout,
        patient,
        project,
        register,
        release,
        serve,
        synth,
        web,
    )


_register()
