"""`sde project ...` and `sde person ...`: project applications, their members and
requested datasets, publication for comment, the board's decision, the kill switch; and the
people who work on them, with their bans. Every change is audited."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.domain.projects import (
    BoardKind,
    MemberRole,
    PersonRole,
    Project,
    Purpose,
    SponsorType,
    parse_dataset_request,
)
from sde.errors import InputError
from sde.services.projects import NewProject, ProjectService, application_from_mapping

if TYPE_CHECKING:
    from sde.adapters.sql import ControlPlane
    from sde.services.governance import GovernanceService

DATE = click.DateTime(formats=["%Y-%m-%d"])


@contextmanager
def _control_plane(home_dir: Path | None) -> Iterator[ControlPlane]:
    # SQLAlchemy loads only for the commands that use the control plane.
    from sde.adapters.sql import open_control_plane

    home = load_home(home_dir)
    with open_control_plane(home.database_url) as plane:
        yield plane


@contextmanager
def _governance(
    home_dir: Path | None, actor: str = "system"
) -> Iterator[tuple[ControlPlane, GovernanceService]]:
    """The control plane and the governance service (with the home's policy engine), every
    ``sde.project`` decision recorded in the audit chain as asked by ``actor``."""
    from sde.adapters.sql import open_control_plane
    from sde.services.governance import GovernanceService, GovernanceSettings
    from sde.services.wiring import policy_engine

    home = load_home(home_dir)
    settings = GovernanceSettings.from_mapping(home.settings.extra)
    with open_control_plane(home.database_url) as plane:
        engine = policy_engine(home, audit=plane.audit, actor=actor)
        yield plane, GovernanceService(plane, engine, settings)


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
    """Project applications: create or apply, publish for comment, comment, add members,
    approve (the board's decision), suspend, resume, close, list, show."""


@project.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@actor_option
@home_option
def apply(file: Path, actor: str, home_dir: Path | None) -> None:
    """Create a draft application from a YAML FILE (every field; see docs/governance.md)."""
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read {file.name}: {type(exc).__name__}") from None
    new = application_from_mapping(data)
    with _control_plane(home_dir) as plane:
        created = ProjectService(plane).create_project(actor, new)
    click.echo(f"created application {created.id} ({created.status.value})")


@project.command("publish")
@click.argument("project_id", metavar="ID")
@actor_option
@home_option
def publish(project_id: str, actor: str, home_dir: Path | None) -> None:
    """Publish a draft application for public comment (comment_period_days, default 28)."""
    with _governance(home_dir, actor) as (_plane, governance):
        published = governance.publish(actor, project_id)
    assert published.comment_period_ends is not None
    click.echo(
        f"published {published.id} for comment until "
        f"{published.comment_period_ends.isoformat(timespec='minutes')}"
    )


@project.command("comment")
@click.argument("project_id", metavar="ID")
@click.option(
    "--text", required=True, help="The comment (kept and published with the application)."
)
@click.option("--name", default=None, help="The name to show with it (default: anonymous).")
@home_option
def comment(project_id: str, text: str, name: str | None, home_dir: Path | None) -> None:
    """Add a public comment to an application open for comment."""
    with _governance(home_dir) as (_plane, governance):
        kept = governance.comment(project_id, text, name)
    click.echo(f"comment {kept.id} kept with {project_id}")


@project.command("comments")
@click.argument("project_id", metavar="ID")
@home_option
def comments(project_id: str, home_dir: Path | None) -> None:
    """List the public comments on an application."""
    with _governance(home_dir) as (_plane, governance):
        found = governance.comments(project_id)
    if not found:
        click.echo("no comments")
    for c in found:
        click.echo(f"#{c.id} {_text(c.created_at)} {c.author or 'anonymous'}: {c.text}")


def _kill_switch_report(project_id: str, frozen: list[str], failed: list[str]) -> None:
    if frozen:
        click.echo(f"frozen release requests: {', '.join(frozen)}")
    if failed:
        click.secho(
            f"warning: {len(failed)} session hook(s) failed for {project_id}: "
            f"{', '.join(failed)} (access is refused by policy all the same)",
            fg="yellow",
            err=True,
        )


@project.command("suspend")
@click.argument("project_id", metavar="ID")
@click.option("--reason", required=True, help="Why (kept with the project).")
@actor_option
@home_option
def suspend(project_id: str, reason: str, actor: str, home_dir: Path | None) -> None:
    """The kill switch: suspend a project now (workspaces, releases, extract refreshes)."""
    with _governance(home_dir, actor) as (_plane, governance):
        result = governance.suspend(actor, project_id, reason)
    click.echo(f"suspended project {project_id}")
    _kill_switch_report(project_id, result.frozen_requests, result.failed_hooks)


@project.command("resume")
@click.argument("project_id", metavar="ID")
@click.option("--reason", required=True, help="Why (kept with the project).")
@actor_option
@home_option
def resume(project_id: str, reason: str, actor: str, home_dir: Path | None) -> None:
    """Lift a suspension: the project is approved again."""
    with _governance(home_dir, actor) as (_plane, governance):
        governance.resume(actor, project_id, reason)
    click.echo(f"resumed project {project_id}")


@project.command("close")
@click.argument("project_id", metavar="ID")
@click.option("--reason", required=True, help="Why (kept with the project).")
@actor_option
@home_option
def close(project_id: str, reason: str, actor: str, home_dir: Path | None) -> None:
    """Close a project for good."""
    with _governance(home_dir, actor) as (_plane, governance):
        result = governance.close(actor, project_id, reason)
    click.echo(f"closed project {project_id}")
    _kill_switch_report(project_id, result.frozen_requests, result.failed_hooks)


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
    actor: str,
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
        created = ProjectService(plane).create_project(actor, new)
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
    actor: str,
    home_dir: Path | None,
) -> None:
    """Add PERSON to project ID (recording them as a researcher if they are new)."""
    with _control_plane(home_dir) as plane:
        member = ProjectService(plane).add_member(
            actor,
            project_id,
            person_id,
            role=role,
            organisation=organisation,
            accredited_until=_day(accredited_until),
        )
    click.echo(f"added {member.person_id} to {member.project_id} as {member.role.value}")


@project.command("approve")
@click.argument("project_id", metavar="ID")
@click.option("--by", "approved_by", required=True, metavar="PERSON", help="Who records it.")
@home_option
def approve(project_id: str, approved_by: str, home_dir: Path | None) -> None:
    """Record the board's approval, if the sde.project policy allows it (same as
    `sde board decide`). PERSON is a board member or operator, not a member."""
    with _governance(home_dir, approved_by) as (plane, governance):
        approved = ProjectService(plane, governance=governance).approve(project_id, approved_by)
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
    for label, value in _application_fields(view.project):
        if value not in (None, "", ()):
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
        for column in d.columns:
            if column in d.column_justifications:
                click.echo(f"    {column}: {d.column_justifications[column]}")
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


def _application_fields(p: Project) -> list[tuple[str, object]]:
    return [
        ("summary", p.summary),
        ("legal basis type", p.legal_basis_type.value if p.legal_basis_type else None),
        ("uses", ", ".join(p.uses)),
        ("public benefit", p.public_benefit),
        ("benefit sharing", p.benefit_sharing),
        ("exclusive access", p.exclusive_access),
        ("cohort", p.cohort),
        ("AI/ML use", p.ai_ml_description if p.ai_ml_use else None),
        ("data processors", ", ".join(p.processors)),
        ("published", p.published_at),
        ("comment period ends", p.comment_period_ends),
        ("decided", p.decided_at),
        ("decided by", p.decided_by),
        ("decision reasons", "; ".join(p.decision_reasons)),
        ("status reason", p.status_reason),
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
@click.option(
    "--board-kind",
    type=click.Choice([k.value for k in BoardKind]),
    default=None,
    help="For a board member: what they bring to the quorum.",
)
@actor_option
@home_option
def add_person(
    person_id: str,
    roles: tuple[str, ...],
    organisation: str,
    display_name: str | None,
    accredited_until: datetime | None,
    board_kind: str | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Record a person and their roles."""
    with _control_plane(home_dir) as plane:
        added = ProjectService(plane).add_person(
            actor,
            person_id,
            roles=roles,
            organisation=organisation,
            display_name=display_name,
            accredited_until=_day(accredited_until),
            board_kind=board_kind,
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


@person.command("board-kind")
@click.argument("person_id", metavar="ID")
@click.argument("kind", type=click.Choice([k.value for k in BoardKind]))
@actor_option
@home_option
def board_kind(person_id: str, kind: str, actor: str, home_dir: Path | None) -> None:
    """Record what board member ID brings to the quorum."""
    with _governance(home_dir, actor) as (_plane, governance):
        governance.set_board_kind(actor, person_id, kind)
    click.echo(f"{person_id} is a {kind} board member")


@person.command("ban")
@click.argument("person_id", metavar="ID")
@click.option("--until", "until", type=DATE, required=True, help="Last day of the ban.")
@click.option("--reason", required=True, help="Why (kept with the person).")
@actor_option
@home_option
def ban(person_id: str, until: datetime, reason: str, actor: str, home_dir: Path | None) -> None:
    """Ban a person through a date: every workspace, extract and release refuses them."""
    with _governance(home_dir, actor) as (_plane, governance):
        banned = governance.ban_person(actor, person_id, until=until.date(), reason=reason)
    click.echo(f"banned {banned.id} until {_text(banned.banned_until)}")


@person.command("unban")
@click.argument("person_id", metavar="ID")
@actor_option
@home_option
def unban(person_id: str, actor: str, home_dir: Path | None) -> None:
    """Lift a person's ban."""
    with _governance(home_dir, actor) as (_plane, governance):
        governance.lift_person_ban(actor, person_id)
    click.echo(f"lifted the ban on {person_id}")
