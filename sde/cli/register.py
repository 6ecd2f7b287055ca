"""`sde register build`: write the public register as a static site."""

from __future__ import annotations

from pathlib import Path

import click

from sde.cli import home_option, load_home, main


@main.group()
def register() -> None:
    """The public register: every project, data flow, release and sanction."""


@register.command("build")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the site to (default: <home>/register). Replaces an earlier "
    "register there; refuses any other non-empty folder.",
)
@home_option
def build(out_dir: Path | None, home_dir: Path | None) -> None:
    """Write the register: HTML pages with CSV and JSON beside each, and the audit
    checkpoint. Counts are rounded; nothing patient-level is published."""
    from sde.register import write_site
    from sde.register.render import read_history
    from sde.services.register import build_register, manifest_reader, register_folder
    from sde.services.wiring import control_plane

    home = load_home(home_dir)
    out = out_dir or register_folder(home)
    with control_plane(home) as plane:
        # Every checkpoint published before is checked against the log itself, so a
        # rewrite is refused even after new events have moved the head on.
        site = build_register(
            plane, plane.audit, manifest_reader(home), published=read_history(out.resolve())
        )
    written = write_site(site, out)
    click.echo(
        f"wrote the public register to {out.resolve()}: {len(written)} files, "
        f"{len(site.projects)} projects, {len(site.flows)} data flows, "
        f"{len(site.releases)} releases"
    )
    click.echo(f"audit checkpoint: event {site.checkpoint.head_seq}, {site.checkpoint.head_hash}")
