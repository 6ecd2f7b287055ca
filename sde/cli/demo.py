"""``sde demo``: the whole flow end to end in a fresh state directory, narrated."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sde.cli import main

DEFAULT_DEMO_HOME = Path(".sde-demo")


@main.command("demo")
@click.option(
    "--home",
    "home_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A new state directory for the demo (default: ./.sde-demo/run-N, a fresh one each run).",
)
@click.option("--patients", default=10_000, show_default=True, help="Synthetic population size.")
def demo_command(home_dir: Path | None, patients: int) -> None:
    """Synthesise, ingest, approve, extract, query, release and audit, end to end.

    Exits 0 only if every stage did what it should."""
    from sde.services.demo import DemoFailure, run_demo

    if home_dir is None:
        DEFAULT_DEMO_HOME.mkdir(exist_ok=True)
        run = 1
        while (DEFAULT_DEMO_HOME / f"run-{run}").exists():
            run += 1
        home_dir = DEFAULT_DEMO_HOME / f"run-{run}"
    try:
        run_demo(home_dir, click.echo, patients=patients)
    except DemoFailure as failure:
        click.secho(f"\ndemo FAILED: expected that {failure}", fg="red", err=True)
        sys.exit(1)
