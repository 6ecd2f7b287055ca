"""``sde optout``: the NHS opt-out registers, patients' own choices, and who a project must
exclude. NHS numbers go in; only counts and ``pid``s come out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option
from sde.domain.optouts import RULE_DESCRIPTIONS, RULES, Scope

if TYPE_CHECKING:
    from sde.services.ingest import IngestResult


@main.group()
def optout() -> None:
    """Opt-outs: import the NHS registers and patients' choices; ask who is excluded."""


@optout.group("import")
def import_group() -> None:
    """Import an opt-out register or a file of patients' choices."""


def _register_summary(result: IngestResult) -> str:
    head = f"{result.dataset}: {result.source_file}"
    if result.skipped:
        return f"{head}: skipped, already imported (sha256 {result.source_sha256[:12]})"
    reasons = ", ".join(f"{code} {n:,}" for code, n in result.quarantined_by_reason.items())
    return (
        f"{head}: {result.rows_in:,} in, {result.rows_written:,} written, "
        f"{result.rows_quarantined:,} quarantined"
        + (f" ({reasons})" if reasons else "")
        + f"; linked/{result.dataset} version {result.linked_version}"
    )


def _import_register(register: str, file: Path, actor: str, home_dir: Path | None) -> None:
    from sde.services.optouts import import_register
    from sde.services.wiring import control_plane, policy_engine

    home = load_home(home_dir)
    with control_plane(home) as store:
        engine = policy_engine(home, audit=store.audit, actor=actor)
        result = import_register(
            home, register, file, actor=actor, audit=store.audit, engine=engine
        )
    click.echo(_register_summary(result))


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@import_group.command("national")
@click.argument("file", type=_FILE)
@actor_option
@home_option
def import_national(file: Path, actor: str, home_dir: Path | None) -> None:
    """Import the national data opt-out list (CSV with an nhs_number column).

    NHS numbers become pid on load and are not stored; bad rows go to the quarantine
    zone with a reason. Each file adds to the register (a file imported before adds
    nothing)."""
    _import_register("national", file, actor, home_dir)


@import_group.command("type1")
@click.argument("file", type=_FILE)
@actor_option
@home_option
def import_type1(file: Path, actor: str, home_dir: Path | None) -> None:
    """Import type 1 opt-out flags from GP practices (CSV: nhs_number, gp_practice).

    The practice code is dropped; the patient's rows are removed from every GP dataset
    in every extract."""
    _import_register("type1", file, actor, home_dir)


@import_group.command("choices")
@click.argument("file", type=_FILE)
@click.option(
    "--source",
    metavar="TEXT",
    help="Where the choices came from, recorded with each (default: the file's name).",
)
@actor_option
@home_option
def import_choices_command(
    file: Path, source: str | None, actor: str, home_dir: Path | None
) -> None:
    """Import patients' choices (CSV: nhs_number, scope, target, choice, recorded_at).

    \b
    scope:       research | planning | commercial | organisation | project
    target:      the organisation or project id (empty for the other scopes)
    choice:      opt_out | opt_in
    recorded_at: when the patient chose (ISO 8601 date or date-time, UTC if no zone)

    All or nothing: a bad line refuses the file, naming the line and field."""
    from sde.services.optouts import import_choices
    from sde.services.wiring import control_plane

    home = load_home(home_dir)
    with control_plane(home) as store:
        result = import_choices(home, file, actor=actor, source=source, audit=store.audit)
    if result.skipped:
        click.echo(
            f"{result.source_file}: skipped, already imported (sha256 "
            f"{result.source_sha256[:12]}, version {result.version})"
        )
        return
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in result.by_scope.items())
    click.echo(
        f"{result.source_file}: {result.events:,} choices of {result.patients:,} patients "
        f"({kinds}); linked/opt_out_choices version {result.version}"
    )


@optout.command("set")
@click.option(
    "--nhs-number",
    "nhs_number",
    prompt="NHS number",
    hide_input=True,
    help="The patient's NHS number (asked for, hidden, if not given). Never shown back.",
)
@click.option(
    "--scope", required=True, type=click.Choice([s.value for s in Scope]), help="What about."
)
@click.option("--target", metavar="NAME", help="The organisation or project id named.")
@click.option(
    "--opt-in", is_flag=True, help="Record an opt-in (withdraw an earlier opt-out) instead."
)
@click.option(
    "--recorded-at",
    metavar="WHEN",
    help="When the patient chose (ISO 8601; default: now).",
)
@actor_option
@home_option
def set_command(
    nhs_number: str,
    scope: str,
    target: str | None,
    opt_in: bool,
    recorded_at: str | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Record one patient's choice (an opt-out unless --opt-in). The latest choice for the
    same scope and target wins."""
    from sde.services.optouts import record_choice
    from sde.services.wiring import control_plane

    home = load_home(home_dir)
    with control_plane(home) as store:
        version = record_choice(
            home,
            nhs_number,
            scope,
            target,
            opt_in=opt_in,
            actor=actor,
            recorded_at=recorded_at,
            audit=store.audit,
        )
    what = "opt-in" if opt_in else "opt-out"
    about = f"{scope} {target.strip()}" if target else scope
    click.echo(f"recorded an {what} ({about}); linked/opt_out_choices version {version}")


@optout.command("exclusions")
@click.argument("project_id")
@click.option(
    "--dataset",
    metavar="NAME",
    help="Answer for this dataset's origin (default: the strictest, as if GP data).",
)
@click.option(
    "--pids",
    "pids_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every excluded pid, one a line, to this file (mode 0600).",
)
@actor_option
@home_option
def exclusions_command(
    project_id: str,
    dataset: str | None,
    pids_file: Path | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Which patients PROJECT's extract must exclude, and why: counts per rule.

    Reads the project's purpose, sponsor, sponsor type and national opt-out exemption
    from the control plane. Patients are counted under every rule that excludes them."""
    from sde.services.ingest import load_spec
    from sde.services.optouts import exclusions, terms_for_project
    from sde.services.wiring import control_plane

    home = load_home(home_dir)
    origin = load_spec(dataset).origin.value if dataset else None
    with control_plane(home) as store:
        project = store.get_project(project_id)
        terms = terms_for_project(project, origin)
        answer = exclusions(home, terms)
        if pids_file is not None:
            _write_pids(pids_file, sorted(answer.excluded().to_pylist()))
        store.audit.record(
            actor,
            "optout.exclusions",
            project_id,
            {
                "origin": origin,
                "counts": answer.counts(),
                "total": answer.total,
                "versions": dict(answer.versions),
                "pids_written": pids_file is not None,
            },
        )
    exemption = "applies" if terms.national_opt_out_applies else "exempt (legal basis)"
    click.echo(
        f"project {project.id}: {terms.purpose}, sponsor {terms.sponsor_organisation} "
        f"({terms.sponsor_type}), national data opt-out {exemption}"
    )
    click.echo(
        f"data: dataset {dataset} (origin {origin})"
        if dataset
        else "data: any origin (GP data included; name --dataset for one dataset)"
    )
    counts = answer.counts()
    for rule in RULES:
        shown = f"{counts[rule]:,} patients" if rule in counts else "does not apply"
        click.echo(f"  {rule:<22} {shown:<16} {RULE_DESCRIPTIONS[rule]}")
    click.echo(f"excluded in all: {answer.total:,} patients")
    if pids_file is not None:
        click.echo(f"pids written to {pids_file}")


def _write_pids(path: Path, pids: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file was there before
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.writelines(f"{pid}\n" for pid in pids)


@optout.command("status")
@home_option
def status_command(home_dir: Path | None) -> None:
    """The registers' sizes and versions, and patients' choices in force by scope."""
    from sde.services.optouts import CHOICES, summary

    home = load_home(home_dir)
    state = summary(home)
    for name, size in state.registers.items():
        click.echo(
            f"{name}: not imported (extracts are refused until it is)"
            if size is None
            else f"{name}: {size:,} patients (version {state.versions[name]})"
        )
    if CHOICES not in state.versions:
        click.echo(f"{CHOICES}: no choices recorded yet")
        return
    click.echo(f"{CHOICES}: version {state.versions[CHOICES]}; opt-outs in force by scope:")
    for scope, count in state.choices_by_scope.items():
        click.echo(f"  {scope}: {count:,}")
