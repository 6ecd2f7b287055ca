"""`sde audit verify` and `sde audit log`: check and read the hash-chained audit log."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.services.audit import log_lines, verify_report

if TYPE_CHECKING:
    from sde.adapters.sql import ControlPlane


@contextmanager
def _control_plane(home_dir: Path | None) -> Iterator[ControlPlane]:
    # SQLAlchemy loads only for the commands that use the control plane.
    from sde.adapters.sql import open_control_plane

    home = load_home(home_dir)
    with open_control_plane(home.database_url) as plane:
        yield plane


@main.group()
def audit() -> None:
    """The audit log: every decision and change, hash-chained."""


@audit.command("verify")
@home_option
def verify(home_dir: Path | None) -> None:
    """Check the whole chain; exit 1 and name the first broken link if it is not intact."""
    with _control_plane(home_dir) as plane:
        intact, lines = verify_report(plane.audit)
    for line in lines:
        click.echo(line, err=not intact)
    if not intact:
        sys.exit(1)


@audit.command("log")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="How many of the newest events to show.",
)
@home_option
def log(limit: int, home_dir: Path | None) -> None:
    """List the newest events, oldest first: seq, time, actor, action, subject, details."""
    with _control_plane(home_dir) as plane:
        lines = log_lines(plane.audit, limit)
    if not lines:
        click.echo("no audit events")
    for line in lines:
        click.echo(line)
