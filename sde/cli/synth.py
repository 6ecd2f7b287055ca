"""``sde synth``: write a seeded synthetic population into the home's ``sources/``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.services.synth import MANIFEST, synthesise

PROGRESS_FROM = 50_000  # patients; smaller runs take a few seconds


@main.command("synth")
@home_option
@click.option(
    "--patients",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="How many patients to generate.",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--events-per-patient",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Mean GP events per patient (admissions scale with it).",
)
@click.option(
    "--bad-share",
    type=click.FloatRange(min=0, max=0.5, max_open=True),
    default=0.008,
    show_default=True,
    help="Share of rows per file made deliberately bad.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Patients generated between writes (memory, not output, depends on it).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite provider files in sources/ even if sde synth did not write them.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help=f"Progress bar on stderr (default: from {PROGRESS_FROM:,} patients, on a terminal).",
)
def synth(
    home_dir: Path | None,
    patients: int,
    seed: int,
    events_per_patient: float,
    bad_share: float,
    batch_size: int,
    force: bool,
    progress: bool | None,
) -> None:
    """Generate a synthetic, UK-shaped population as the seven provider files in
    <home>/sources, with deliberately bad rows counted in synth-manifest.json."""
    home = load_home(home_dir)
    if progress is None:
        progress = patients >= PROGRESS_FROM and sys.stderr.isatty()
    started = time.perf_counter()
    summary = synthesise(
        home.sources,
        patients,
        seed=seed,
        events_per_patient=events_per_patient,
        bad_share=bad_share,
        batch_size=batch_size,
        progress=progress,
        overwrite=force,
    )
    elapsed = time.perf_counter() - started
    click.echo(
        f"synthesised {summary.patients:,} patients (seed {summary.seed}) "
        f"into {home.sources} in {elapsed:.1f} s"
    )
    width = max(len(f.name) for f in summary.files)
    click.echo(f"  {'file':<{width}}  {'rows':>11}  {'bad rows':>9}")
    for entry in summary.files:
        click.echo(f"  {entry.name:<{width}}  {entry.rows:>11,}  {entry.bad:>9,}")
    click.echo(f"bad rows by kind: {home.sources / MANIFEST}")
