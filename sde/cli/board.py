"""`sde board ...` and `sde org ...`: the approval board (conflicts of interest, votes, the
decision through the ``sde.project`` policy, rejections) and bans of organisations.
Every change is audited."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from sde.cli import home_option, main
from sde.cli.people import actor_option
from sde.cli.project import DATE, _governance, _table, _text


@main.group()
def board() -> None:
    """The approval board: conflicts, votes, decisions."""


@board.command("conflict")
@click.argument("project_id", metavar="ID")
@click.argument("person_id", metavar="PERSON")
@click.option("--interest", required=True, help="The interest declared (kept).")
@home_option
def conflict(project_id: str, person_id: str, interest: str, home_dir: Path | None) -> None:
    """Board member PERSON declares a conflict of interest on ID: their vote won't count."""
    with _governance(home_dir, person_id) as (_plane, governance):
        governance.declare_conflict(project_id, person_id, interest)
    click.echo(f"{person_id} declared a conflict on {project_id}; their vote will not count")


@board.command("vote")
@click.argument("project_id", metavar="ID")
@click.argument("decision", type=click.Choice(["approve", "reject"]))
@click.option("--by", "voter", required=True, metavar="PERSON", help="The board member.")
@click.option("--reason", required=True, help="Why (kept with the vote).")
@home_option
def vote(project_id: str, decision: str, voter: str, reason: str, home_dir: Path | None) -> None:
    """Vote on an application once its comment period is over."""
    with _governance(home_dir, voter) as (_plane, governance):
        governance.vote(project_id, voter, decision, reason)
    click.echo(f"{voter} voted to {decision} {project_id}")


@board.command("show")
@click.argument("project_id", metavar="ID")
@actor_option
@home_option
def show(project_id: str, actor: str, home_dir: Path | None) -> None:
    """Votes (and whether each counts), conflicts, comments, and the policy's answer now.

    The policy's decision is recorded in the audit log as asked by --actor."""
    with _governance(home_dir, actor) as (_plane, governance):
        view = governance.board(project_id)
    p = view.project
    click.echo(f"project:                  {p.id} ({p.status.value})")
    click.echo(f"comment period ends:      {_text(p.comment_period_ends)}")
    click.echo(f"public comments:          {len(view.comments)}")
    click.echo("votes:")
    if not view.votes:
        click.echo("  (none)")
    for v in view.votes:
        kind = v.kind.value if v.kind else "no kind"
        why = "counts" if v.counts else "does not count: " + (", ".join(v.conflicts) or "voter")
        click.echo(f"  {v.vote.voter} ({kind}): {v.vote.decision.value} -- {why}")
    click.echo("conflicts declared:")
    if not view.conflicts:
        click.echo("  (none)")
    for c in view.conflicts:
        click.echo(f"  {c.person_id}: {c.interest}")
    if view.decision.allow:
        click.echo("policy sde.project: the board may approve")
    else:
        click.echo("policy sde.project: approval refused now:")
        for reason in view.decision.reasons:
            click.echo(f"  - {reason}")


@board.command("decide")
@click.argument("project_id", metavar="ID")
@click.option("--by", "decided_by", required=True, metavar="PERSON", help="Who records it.")
@home_option
def decide(project_id: str, decided_by: str, home_dir: Path | None) -> None:
    """Record the board's approval, if the sde.project policy allows it."""
    with _governance(home_dir, decided_by) as (_plane, governance):
        approved = governance.decide(project_id, decided_by)
    click.echo(f"approved project {approved.id} (by {approved.approved_by})")


@board.command("reject")
@click.argument("project_id", metavar="ID")
@click.option("--by", "decided_by", required=True, metavar="PERSON", help="Who records it.")
@click.option(
    "--reason", "reasons", multiple=True, required=True, help="A reason; repeat for several."
)
@home_option
def reject(
    project_id: str, decided_by: str, reasons: tuple[str, ...], home_dir: Path | None
) -> None:
    """Record the board's rejection of an application, with its reasons (kept)."""
    with _governance(home_dir, decided_by) as (_plane, governance):
        governance.reject(project_id, decided_by, list(reasons))
    click.echo(f"rejected project {project_id}")


@main.group()
def org() -> None:
    """Organisations: bans."""


@org.command("ban")
@click.argument("organisation", metavar="ORG")
@click.option("--until", "until", type=DATE, required=True, help="Last day of the ban.")
@click.option("--reason", required=True, help="Why (kept with the ban).")
@actor_option
@home_option
def ban(organisation: str, until: datetime, reason: str, actor: str, home_dir: Path | None) -> None:
    """Ban an organisation: its people are refused everywhere, it sponsors no project."""
    with _governance(home_dir, actor) as (_plane, governance):
        done = governance.ban_organisation(actor, organisation, until=until.date(), reason=reason)
    click.echo(f"banned {done.organisation} until {_text(done.banned_until)}")


@org.command("unban")
@click.argument("organisation", metavar="ORG")
@actor_option
@home_option
def unban(organisation: str, actor: str, home_dir: Path | None) -> None:
    """Lift an organisation's ban."""
    with _governance(home_dir, actor) as (_plane, governance):
        governance.lift_organisation_ban(actor, organisation)
    click.echo(f"lifted the ban on {organisation}")


@org.command("bans")
@home_option
def bans(home_dir: Path | None) -> None:
    """List organisation bans (ended ones included)."""
    with _governance(home_dir) as (_plane, governance):
        found = governance.organisation_bans()
    if not found:
        click.echo("no organisation bans")
        return
    rows = [("ORGANISATION", "BANNED UNTIL", "BY", "REASON")]
    rows += [(b.organisation, _text(b.banned_until), b.banned_by, b.reason) for b in found]
    _table(rows)
