"""``sde extract PROJECT``: build (or refresh) a project's extract."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.cli.people import actor_option

ENGINES = ("local", "spark")


@main.command("extract")
@click.argument("project_id")
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="local: Arrow batches, delta-rs, this process. spark: the same batch transforms on "
    "Apache Spark in local mode (mapInArrow, delta-spark); the same tables and manifest.",
)
@click.option(
    "--spark-cores",
    type=click.IntRange(min=1),
    default=None,
    help="Spark's cores, local[N] (--engine spark; default: spark.cores in config.yaml, else 2).",
)
@click.option(
    "--spark-memory",
    default=None,
    metavar="SIZE",
    help="Spark's memory, e.g. 4g (--engine spark; default: spark.memory in config.yaml, else 2g).",
)
@actor_option
@home_option
def extract_command(
    project_id: str,
    engine: str,
    spark_cores: int | None,
    spark_memory: str | None,
    actor: str,
    home_dir: Path | None,
) -> None:
    """Build PROJECT's extract: approved datasets and columns only, opt-outs applied,
    project pseudonyms instead of pid, source versions pinned."""
    from sde.domain.policy import BUILD_EXTRACT
    from sde.services.access import decide_access
    from sde.services.extract import ExtractManifest, ExtractRequest, build_extract
    from sde.services.ingest import load_spec, shipped_datasets
    from sde.services.wiring import control_plane, policy_engine

    if engine != "spark" and (spark_cores is not None or spark_memory is not None):
        raise click.UsageError("--spark-cores and --spark-memory go with --engine spark")
    home = load_home(home_dir)
    if engine == "spark":
        from sde.adapters.spark import delta_jars
        from sde.services.spark_engine import spark_settings

        # Checked before anything is decided or started: a wrong setting fails here.
        settings = spark_settings(home).with_overrides(cores=spark_cores, memory=spark_memory)
        delta_jars(settings.jars())
    with control_plane(home) as store:
        decide_access(
            store,
            policy_engine(home, audit=store.audit, actor=actor),
            person_id=actor,
            project_id=project_id,
            action=BUILD_EXTRACT,
            today=dt.datetime.now(dt.UTC).date(),
        ).require(f"extract of project {project_id} by {actor}")
        project = store.get_project(project_id)
        approved = {d.dataset: d.columns for d in store.list_project_datasets(project_id)}
        origins = {name: load_spec(name).origin.value for name in shipped_datasets()}
        request = ExtractRequest(
            project_id=project.id,
            purpose=project.purpose.value,
            national_opt_out_applies=project.national_opt_out_applies,
            datasets=approved,
            sponsor_type=project.sponsor_type.value,
            sponsor_organisation=project.sponsor,
        )
        manifest: ExtractManifest
        if engine == "spark":
            from sde.services.extract_spark import build_extract_spark
            from sde.services.spark_engine import spark_engine

            # The session lives for this command only: stopped, its JVM too, on any exit.
            with spark_engine(settings) as spark:
                manifest = build_extract_spark(
                    spark, home, request, origins, actor=actor, audit=store.audit
                )
        else:
            manifest = build_extract(home, request, origins, actor=actor, audit=store.audit)
    for name, table in sorted(manifest.tables.items()):
        click.echo(
            f"{name}: {table.rows_written} rows, columns {', '.join(table.columns)}, "
            f"source version {table.source_version}; opt-outs removed "
            f"{table.patients_removed_by_opt_out} patients ({table.rows_removed_by_opt_out} rows)"
        )
        for rule, removed in table.removed_by_rule.items():
            click.echo(f"  {rule}: {removed['patients']} patients, {removed['rows']} rows")
