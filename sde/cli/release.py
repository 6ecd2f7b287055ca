"""``sde release request / review / publish / show``: the airlock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.domain.releases import Vote
from sde.errors import InputError

if TYPE_CHECKING:
    from sde.adapters.sql import ControlPlane
    from sde.services.home import Home
    from sde.services.release import ReleaseService


@contextmanager
def _airlock(home: Home, actor: str = "system") -> Iterator[tuple[ControlPlane, ReleaseService]]:
    """The airlock, with every policy decision recorded in the audit chain as asked by
    ``actor``."""
    from sde.services.wiring import control_plane, policy_engine, release_service

    with control_plane(home) as store:
        engine = policy_engine(home, audit=store.audit, actor=actor)
        yield store, release_service(home, store, engine)


@main.group()
def release() -> None:
    """Ask for outputs to leave, review them, publish them."""


@release.command("request")
@click.argument("project_id")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--title", required=True, help="What the outputs are.")
@click.option("--comment", default=None, help="Context for the output checkers.")
@click.option(
    "--counts",
    "count_columns",
    default="",
    help="Comma-separated count columns (default: columns named n, count, *_count, n_*).",
)
@actor_option
@home_option
def request_command(
    project_id: str,
    files: tuple[Path, ...],
    title: str,
    comment: str | None,
    count_columns: str,
    actor: str,
    home_dir: Path | None,
) -> None:
    """File a release request for PROJECT with FILES (CSV frequency tables)."""
    from sde.services.release import OutputFile

    home = load_home(home_dir)
    counts = tuple(c.strip() for c in count_columns.split(",") if c.strip())
    outputs = []
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path.name}: {exc.strerror}") from None
        outputs.append(OutputFile(path.name, content, count_columns=counts))
    with _airlock(home, actor) as (_store, service):
        request = service.request(project_id, actor, outputs, title=title, comment=comment)
        click.echo(f"{request.id}: {request.status.value}")
        _print_checks(service.checks(request.id))


def _print_checks(checks: dict[str, list[dict[str, object]]]) -> None:
    for name, results in checks.items():
        for result in results:
            click.echo(f"  {name}: {result['status']:<6} {result['name']}: {result['message']}")


@release.command("review")
@click.argument("request_id")
@click.option(
    "--decision",
    type=click.Choice([v.value for v in Vote]),
    required=True,
    help="approve, reject, or return to the author.",
)
@click.option("--comment", default=None)
@actor_option
@home_option
def review_command(
    request_id: str, decision: str, comment: str | None, actor: str, home_dir: Path | None
) -> None:
    """Record an output checker's independent decision on REQUEST_ID."""
    home = load_home(home_dir)
    with _airlock(home, actor) as (_store, service):
        status = service.review(request_id, actor, Vote(decision), comment)
    click.echo(f"{request_id}: {status.value}")


@release.command("publish")
@click.argument("request_id")
@actor_option
@home_option
def publish_command(request_id: str, actor: str, home_dir: Path | None) -> None:
    """Release REQUEST_ID's files to the egress zone, if the egress policy allows."""
    home = load_home(home_dir)
    with _airlock(home, actor) as (_store, service):
        target = service.publish(request_id, actor)
    click.echo(f"{request_id}: released to {target}")


@release.command("show")
@click.argument("request_id")
@home_option
def show_command(request_id: str, home_dir: Path | None) -> None:
    """Show a request: status, files, checks and votes."""
    home = load_home(home_dir)
    with _airlock(home) as (store, service):
        request = store.get_release_request(request_id)
        click.echo(
            json.dumps(
                {
                    "id": request.id,
                    "project": request.project_id,
                    "author": request.author,
                    "status": request.status.value,
                    "title": request.title,
                    "reviews": [
                        {"reviewer": r.reviewer, "decision": r.decision.value}
                        for r in store.list_reviews(request_id)
                    ],
                    "checks": service.checks(request_id),
                },
                indent=2,
            )
        )
