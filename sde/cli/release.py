"""``sde release request / resubmit / withdraw / review / publish / show``: the airlock."""

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
    from sde.services.release import OutputFile, ReleaseService


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


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise InputError(f"{what} must be given as NAME=VALUE")
        out[name.strip()] = text.strip()
    return out


def _outputs(
    files: tuple[Path, ...], count_columns: str, exception_options: tuple[str, ...]
) -> list[OutputFile]:
    """The files to release, from the command's FILES, ``--counts`` and ``--exception``."""
    from sde.domain.sdc.files import category
    from sde.services.release import OutputFile

    counts = tuple(c.strip() for c in count_columns.split(",") if c.strip())
    exceptions = _pairs(exception_options, "--exception")
    names = {p.name for p in files}
    unknown = sorted(set(exceptions) - names)
    if unknown:
        raise InputError(f"--exception names file(s) not in the request: {', '.join(unknown)}")
    outputs = []
    for path in files:
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path.name}: {exc.strerror}") from None
        kind = category(path.name) or "table"
        outputs.append(
            OutputFile(
                path.name,
                content,
                kind=kind,
                count_columns=counts,
                exception=exceptions.get(path.name),
            )
        )
    return outputs


_files_argument = click.argument(
    "files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_counts_option = click.option(
    "--counts",
    "count_columns",
    default="",
    help="Comma-separated count columns (default: columns named n, count, *_count, n_*).",
)
_exception_option = click.option(
    "--exception",
    "exceptions",
    multiple=True,
    metavar="FILE=JUSTIFICATION",
    help="Ask for an exception for FILE, with the reason checkers should accept it.",
)


@release.command("request")
@click.argument("project_id")
@_files_argument
@click.option("--title", required=True, help="What the outputs are.")
@click.option("--comment", default=None, help="Context for the output checkers.")
@_counts_option
@_exception_option
@actor_option
@home_option
def request_command(
    project_id: str,
    files: tuple[Path, ...],
    title: str,
    comment: str | None,
    count_columns: str,
    exceptions: tuple[str, ...],
    actor: str,
    home_dir: Path | None,
) -> None:
    """File a release request for PROJECT with FILES (tables, figures, text, code)."""
    if not files:
        raise InputError("a release request needs at least one file")
    home = load_home(home_dir)
    outputs = _outputs(files, count_columns, exceptions)
    with _airlock(home, actor) as (_store, service):
        request = service.request(project_id, actor, outputs, title=title, comment=comment)
        click.echo(f"{request.id}: {request.status.value}")
        _print_checks(service.checks(request.id))


@release.command("resubmit")
@click.argument("request_id")
@_files_argument
@click.option("--remove", multiple=True, metavar="FILE", help="Take FILE out of the request.")
@click.option("--comment", default=None, help="What changed, for the output checkers.")
@_counts_option
@_exception_option
@actor_option
@home_option
def resubmit_command(
    request_id: str,
    files: tuple[Path, ...],
    remove: tuple[str, ...],
    comment: str | None,
    count_columns: str,
    exceptions: tuple[str, ...],
    actor: str,
    home_dir: Path | None,
) -> None:
    """Answer a returned REQUEST_ID: replace or add FILES, remove some, submit it again.
    Every file is checked again and earlier reviews are cleared."""
    home = load_home(home_dir)
    outputs = _outputs(files, count_columns, exceptions)
    with _airlock(home, actor) as (_store, service):
        request = service.resubmit(request_id, actor, outputs, remove=remove, comment=comment)
        click.echo(f"{request.id}: {request.status.value}")
        _print_checks(service.checks(request.id))


@release.command("withdraw")
@click.argument("request_id")
@actor_option
@home_option
def withdraw_command(request_id: str, actor: str, home_dir: Path | None) -> None:
    """Withdraw your own REQUEST_ID."""
    home = load_home(home_dir)
    with _airlock(home, actor) as (_store, service):
        service.withdraw(request_id, actor)
    click.echo(f"{request_id}: withdrawn")


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
    help="approve, reject, or return to the author (request changes), for every file.",
)
@click.option(
    "--file",
    "file_decisions",
    multiple=True,
    metavar="FILE=DECISION",
    help="A different decision for one file (approve, reject or return).",
)
@click.option("--comment", default=None)
@actor_option
@home_option
def review_command(
    request_id: str,
    decision: str,
    file_decisions: tuple[str, ...],
    comment: str | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Record an output checker's independent decision on each file of REQUEST_ID. The
    last approval needed releases the request at once, if the egress policy allows."""
    from sde.services.release import FileDecision

    home = load_home(home_dir)
    overrides = _pairs(file_decisions, "--file")
    for name, value in overrides.items():
        if value not in {v.value for v in Vote}:
            raise InputError(f"--file {name}: the decision must be approve, reject or return")
    with _airlock(home, actor) as (store, service):
        names = [f.name for f in store.list_release_files(request_id)]
        decisions = {
            name: FileDecision(Vote(overrides.get(name, decision)), comment) for name in names
        }
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise InputError(f"the request has no file(s) named {', '.join(unknown)}")
        status = service.review(request_id, actor, decisions, comment)
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
                        {
                            "reviewer": r.reviewer,
                            "decision": r.decision.value,
                            "files": {n: v.decision.value for n, v in sorted(r.files.items())},
                        }
                        for r in store.list_reviews(request_id)
                    ],
                    "exceptions": {
                        f.name: f.exception
                        for f in store.list_release_files(request_id)
                        if f.exception
                    },
                    "checks": service.checks(request_id),
                },
                indent=2,
            )
        )
