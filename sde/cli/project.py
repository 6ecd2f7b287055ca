"""`sde project ...` and `sde person ...`: projects, their members and approved datasets,
and the people who work on them. Every change is audited."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.cli.people import default_actor as _default_actor
from sde.domain.projects import (
    MemberRole,
    PersonRole,
    Project,
    Purpose,
    SponsorType,
    parse_dataset_request,
)
from sde.services.projects import NewProject, ProjectService

if TYPE_CHECKING:
    from sde.adapters.sql import ControlPlane

DATE = click.DateTime(formats=["%Y-%m-%d"])


@contextmanager
def _control_plane(home_dir: Path | None) -> Iterator[ControlPlane]:
    # SQLAlchemy loads only for the commands that use the control plane.
    from sde.adapters.sql import open_control_plane

    home = load_home(home_dir)
    with open_control_plane(home.database_url) as plane:
        yield plane


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --- sde project --------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Projects: create, add members, approve, list, show."""


@project.command("create")
@click.argument("project_id", metavar="ID")
@click.option("--title", required=True, help="What the project is, in a line.")
@click.option("--purpose", required=True, type=click.Choice([p.value for p in Purpose]))
@click.option("--sponsor", required=True, help="The organisation paying for the project.")
@click.option(
    "--sponsor-type",
    type=click.Choice([s.value for s in SponsorType]),
    default=SponsorType.ACADEMIC.value,
    show_default=True,
)
@click.option(
    "--legal-basis", default=None, help="e.g. 'consent', 'section 251 (CAG 20/CAG/0001)'."
)
@click.option(
    "--no-national-opt-out",
    "exempt",
    is_flag=True,
    help="The legal basis exempts the project from the national data opt-out (published).",
)
@click.option("--start", type=DATE, default=None, help="Start date, YYYY-MM-DD.")
@click.option("--end", type=DATE, default=None, help="End date, YYYY-MM-DD.")
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    metavar="NAME:COL1,COL2[:WHY]",
    help="An approved dataset, its columns and (optionally) why; repeat for each dataset.",
)
@actor_option
@home_option
def create(
    project_id: str,
    title: str,
    purpose: str,
    sponsor: str,
    sponsor_type: str,
    legal_basis: str | None,
    exempt: bool,
    start: datetime | None,
    end: datetime | None,
    datasets: tuple[str, ...],
    actor: str | None,
    home_dir: Path | None,
) -> None:
    """Create a draft project with its approved datasets and columns."""
    new = NewProject(
        id=project_id,
        title=title,
        purpose=purpose,
        sponsor=sponsor,
        sponsor_type=sponsor_type,
        legal_basis=legal_basis,
        national_opt_out_applies=not exempt,
        start_date=_day(start),
        end_date=_day(end),
        datasets=tuple(parse_dataset_request(d) for d in datasets),
    )
    with _control_plane(home_dir) as plane:
        created = ProjectService(plane).create_project(actor or _default_actor(), new)
    click.echo(f"created project {created.id} ({created.status.value})")


@project.command("add-member")
@click.argument("project_id", metavar="ID")
@click.argument("person_id", metavar="PERSON")
@click.option(
    "--role",
    type=click.Choice([r.value for r in MemberRole]),
    default=MemberRole.RESEARCHER.value,
    show_default=True,
)
@click.option("--organisation", default=None, help="For a new person: their organisation.")
@click.option(
    "--accredited-until",
    type=DATE,
    default=None,
    help="For a new person: accreditation end, YYYY-MM-DD (default: a year from today).",
)
@actor_option
@home_option
def add_member(
    project_id: str,
    person_id: str,
    role: str,
    organisation: str | None,
    accredited_until: datetime | None,
    actor: str | None,
    home_dir: Path | None,
) -> None:
    """Add PERSON to project ID (recording them as a researcher if they are new)."""
    with _control_plane(home_dir) as plane:
        member = ProjectService(plane).add_member(
            actor or _default_actor(),
            project_id,
            person_id,
            role=role,
            organisation=organisation,
            accredited_until=_day(accredited_until),
        )
    click.echo(f"added {member.person_id} to {member.project_id} as {member.role.value}")


@project.command("approve")
@click.argument("project_id", metavar="ID")
@click.option("--by", "approved_by", required=True, metavar="PERSON", help="The approver.")
@home_option
def approve(project_id: str, approved_by: str, home_dir: Path | None) -> None:
    """Approve a draft project (the approver is a board member or operator, not a member)."""
    with _control_plane(home_dir) as plane:
        approved = ProjectService(plane).approve(project_id, approved_by)
    click.echo(f"approved project {approved.id} (by {approved.approved_by})")


@project.command("list")
@home_option
def list_projects(home_dir: Path | None) -> None:
    """List projects."""
    with _control_plane(home_dir) as plane:
        found = ProjectService(plane).list_projects()
    if not found:
        click.echo("no projects")
        return
    rows = [("ID", "STATUS", "PURPOSE", "SPONSOR", "TITLE")]
    rows += [(p.id, p.status.value, p.purpose.value, p.sponsor, p.title) for p in found]
    _table(rows)


@project.command("show")
@click.argument("project_id", metavar="ID")
@home_option
def show(project_id: str, home_dir: Path | None) -> None:
    """Show a project, its members and its approved datasets."""
    with _control_plane(home_dir) as plane:
        view = ProjectService(plane).show(project_id)
    for label, value in _project_fields(view.project):
        click.echo(f"{label + ':':<26}{_text(value)}")
    click.echo("members:")
    for m in view.members or []:
        click.echo(f"  {m.person_id} ({m.role.value}, added {_text(m.added_at)})")
    if not view.members:
        click.echo("  (none)")
    click.echo("datasets:")
    for d in view.datasets:
        why = f"  -- {d.justification}" if d.justification else ""
        click.echo(f"  {d.dataset}: {', '.join(d.columns)}{why}")
    if not view.datasets:
        click.echo("  (none)")


def _project_fields(p: Project) -> list[tuple[str, object]]:
    return [
        ("project", p.id),
        ("title", p.title),
        ("status", p.status.value),
        ("purpose", p.purpose.value),
        ("sponsor", f"{p.sponsor} ({p.sponsor_type.value})"),
        ("legal basis", p.legal_basis),
        ("national opt-out applies", p.national_opt_out_applies),
        ("start", p.start_date),
        ("end", p.end_date),
        ("created", p.created_at),
        ("approved", p.approved_at),
        ("approved by", p.approved_by),
    ]


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# --- sde person ------------------------------------------------------------------------------


@main.group()
def person() -> None:
    """People: researchers, output checkers, board members, operators."""


@person.command("add")
@click.argument("person_id", metavar="ID")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    type=click.Choice([r.value for r in PersonRole]),
    help="A role; repeat for several.",
)
@click.option("--organisation", required=True)
@click.option("--name", "display_name", default=None, help="Display name (default: the id).")
@click.option(
    "--accredited-until",
    type=DATE,
    default=None,
    help="Accreditation end, YYYY-MM-DD (default: a year from today).",
)
@actor_option
@home_option
def add_person(
    person_id: str,
    roles: tuple[str, ...],
    organisation: str,
    display_name: str | None,
    accredited_until: datetime | None,
    actor: str | None,
    home_dir: Path | None,
) -> None:
    """Record a person and their roles."""
    with _control_plane(home_dir) as plane:
        added = ProjectService(plane).add_person(
            actor or _default_actor(),
            person_id,
            roles=roles,
            organisation=organisation,
            display_name=display_name,
            accredited_until=_day(accredited_until),
        )
    click.echo(f"added person {added.id} ({', '.join(r.value for r in added.roles)})")


@person.command("list")
@home_option
def list_people(home_dir: Path | None) -> None:
    """List people, their roles, accreditation and bans."""
    with _control_plane(home_dir) as plane:
        found = ProjectService(plane).list_people()
    if not found:
        click.echo("no people")
        return
    rows = [("ID", "ROLES", "ORGANISATION", "ACCREDITED UNTIL", "BANNED UNTIL")]
    rows += [
        (
            p.id,
            ",".join(r.value for r in p.roles),
            _text(p.organisation),
            _text(p.accredited_until),
            _text(p.banned_until),
        )
        for p in found
    ]
    _table(rows)
