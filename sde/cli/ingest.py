"""`sde ingest`: provider files -> pseudonymised Delta tables in the linked zone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sde.cli import home_option, load_home, main
from sde.cli.engine import check_engine_options, engine_options, spark_settings_for
from sde.cli.people import actor_option
from sde.errors import InputError
from sde.services.ports import AuditSink

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sde.domain.policy import PolicyEngine
    from sde.services.home import Home
    from sde.services.ingest import IngestResult


@contextmanager
def _governed(home: Home, actor: str) -> Iterator[tuple[AuditSink, PolicyEngine]]:
    """The control plane's audit log, and the policy engine that records every decision
    in it as asked by ``actor`` (the ``sde.ingest`` policy decides each spec before any row
    is read)."""
    # Imported here: SQLAlchemy and the policy engine load only when a command runs.
    from sde.services.wiring import control_plane, policy_engine

    with control_plane(home) as plane:
        yield plane.audit, policy_engine(home, audit=plane.audit, actor=actor)


@contextmanager
def _spark(
    home: Home, engine: str, cores: int | None, memory: str | None
) -> Iterator[SparkSession | None]:
    """A Spark session for ``--engine spark`` (its settings and Delta's jars checked
    before anything else happens), stopped when the command ends; None for local."""
    settings = spark_settings_for(home, engine, cores, memory)
    if settings is None:
        yield None
        return
    from sde.services.spark_engine import spark_engine

    with spark_engine(settings, app_name="sde-ingest") as session:
        yield session


def _references(values: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name or not file:
            raise InputError(f"--reference takes DATASET=FILE, not {value!r}")
        out[name] = Path(file)
    return out


@main.command()
@click.argument("args", nargs=-1, metavar="[DATASET] FILE...")
@click.option(
    "--all",
    "all_sources",
    is_flag=True,
    help="Ingest every shipped dataset whose <name>.csv is in <home>/sources.",
)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A dataset spec YAML file; then every argument is a FILE.",
)
@click.option(
    "--reference",
    "references",
    multiple=True,
    metavar="DATASET=FILE",
    help="The file of a known_from dataset (default <home>/sources/DATASET.csv).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: when stderr is a terminal).",
)
@engine_options
@actor_option
@home_option
def ingest(
    args: tuple[str, ...],
    all_sources: bool,
    spec_file: Path | None,
    references: tuple[str, ...],
    progress: bool | None,
    engine: str,
    spark_cores: int | None,
    spark_memory: str | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Ingest provider files for a dataset (a shipped spec name, or --spec FILE).

    \b
      sde ingest patients sources/patients.csv
      sde ingest --spec my_dataset.yaml data/part1.csv data/part2.csv
      sde ingest --all

    The sde.ingest policy first decides whether the spec is acceptable for each file
    (every column classified, no identifying column kept, ...); a refusal names its
    reasons and writes nothing. Bad rows go to the quarantine zone with a reason; a file
    already ingested (same SHA-256) adds nothing.
    """
    from sde.services import ingest as service

    check_engine_options(engine, spark_cores, spark_memory)
    show_progress = sys.stderr.isatty() if progress is None else progress
    home = load_home(home_dir)
    if all_sources:
        if args or spec_file:
            raise InputError("--all takes no DATASET, FILE or --spec")
        names = [n for n in service.shipped_datasets() if (home.sources / f"{n}.csv").is_file()]
        if not names:
            raise InputError(f"no provider files named <dataset>.csv in {home.sources}")
        with (
            _spark(home, engine, spark_cores, spark_memory) as spark,
            _governed(home, actor) as (audit, policy),
        ):
            results = service.ingest_all(
                home, audit=audit, actor=actor, progress=show_progress, engine=policy, spark=spark
            )
        for result in results:
            click.echo(_summary(result))
        return

    if spec_file is not None:
        spec = service.load_spec_file(spec_file)
        files = list(args)
    else:
        if not args:
            raise InputError("name a DATASET and at least one FILE, or use --all")
        spec = service.load_spec(args[0])
        files = list(args[1:])
    if not files:
        raise InputError(f"name at least one FILE to ingest for dataset {spec.name}")
    refs = _references(references)
    with (
        _spark(home, engine, spark_cores, spark_memory) as spark,
        _governed(home, actor) as (audit, policy),
    ):
        for file in files:
            result = service.ingest_file(
                home,
                spec,
                Path(file),
                audit=audit,
                actor=actor,
                progress=show_progress,
                references=refs,
                engine=policy,
                spark=spark,
            )
            click.echo(_summary(result))


def _summary(result: IngestResult) -> str:
    head = f"{result.dataset}: {result.source_file}"
    if result.skipped:
        return (
            f"{head}: skipped, already ingested (sha256 {result.source_sha256[:12]}); nothing added"
        )
    reasons = ", ".join(f"{code} {n:,}" for code, n in result.quarantined_by_reason.items())
    return (
        f"{head}: {result.rows_in:,} in, {result.rows_written:,} written, "
        f"{result.rows_quarantined:,} quarantined"
        + (f" ({reasons})" if reasons else "")
        + f"; linked/{result.dataset} version {result.linked_version}"
    )
