"""`sde audit verify` and `sde audit log`: check and read the hash-chained audit log.

`sde audit verify` checks the chain, then every published checkpoint it can find: the
history in ``<home>/register/`` and each ``--checkpoint`` (a file, or a URL). Reading those
files and URLs happens here; the checking is :func:`sde.services.audit.audit_report`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from sde.cli import home_option, load_home, main
from sde.domain.encoding import is_loopback
from sde.errors import InputError
from sde.services.audit import (
    CheckpointSource,
    audit_report,
    checkpoints_from_bytes,
    log_lines,
)

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


MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024
URL_TIMEOUT_SECONDS = 15.0


def _is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def _fetch(url: str) -> bytes:
    """A checkpoint file over HTTPS (or plain HTTP on the loopback only)."""
    import requests

    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise InputError(f"{url}: use https:// (plain http is allowed on the loopback only)")
    try:
        with requests.get(url, timeout=URL_TIMEOUT_SECONDS, stream=True) as response:
            if response.status_code != 200:
                raise InputError(f"{url} answered HTTP {response.status_code}")
            content = bytearray()
            for chunk in response.iter_content(64 * 1024):
                content.extend(chunk)
                if len(content) > MAX_CHECKPOINT_BYTES:
                    raise InputError(f"{url} is larger than a checkpoint file can be")
            return bytes(content)
    except requests.RequestException as exc:
        raise InputError(f"{url} could not be read ({type(exc).__name__})") from None


def _read(source: str) -> CheckpointSource:
    if _is_url(source):
        content = _fetch(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size > MAX_CHECKPOINT_BYTES:
                raise InputError(f"{source} is larger than a checkpoint file can be")
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"{source} cannot be read ({exc.strerror or exc})") from None
    return CheckpointSource(source, checkpoints_from_bytes(content, source))


def _register_checkpoints(register_dir: Path) -> CheckpointSource | None:
    """Every checkpoint the home's register published (its history, or, for a register
    built before the history was kept, its one checkpoint); None when it has none."""
    for name in ("checkpoints.json", "checkpoint.json"):
        path = register_dir / name
        if path.exists():
            return _read(str(path))
    return None


@audit.command("verify")
@click.option(
    "--checkpoint",
    "sources",
    multiple=True,
    metavar="SOURCE",
    help="A published checkpoint to check as well: a register's checkpoints.json or "
    "checkpoint.json, as a file or an https:// URL (http:// on the loopback only). "
    "Repeatable. The home's own register (register_folder in config.yaml, else "
    "<home>/register/) is always checked.",
)
@home_option
def verify(sources: tuple[str, ...], home_dir: Path | None) -> None:
    """Check the whole chain, then every published checkpoint: the log must still hold
    each checkpoint's event with its hash. Names the position of every failure; exit 1 if
    the chain is broken or any checkpoint does not match."""
    from sde.services.register import register_folder  # local: loads the lake's readers

    home = load_home(home_dir)
    found = [_read(source) for source in sources]
    own = _register_checkpoints(register_folder(home))
    if own is not None:
        found.insert(0, own)
    with _control_plane(home.root) as plane:
        report = audit_report(plane.audit, found)
    for line in report.lines:
        click.echo(line.text, err=not line.ok)
    if not report.ok:
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
