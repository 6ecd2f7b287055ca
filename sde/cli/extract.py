"""``sde extract PROJECT``: build (or refresh) a project's extract."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from sde.cli import home_option, load_home, main
from sde.cli.engine import check_engine_options, engine_options, spark_settings_for
from sde.cli.people import actor_option


@main.command("extract")
@click.argument("project_id")
@engine_options
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

    check_engine_options(engine, spark_cores, spark_memory)
    home = load_home(home_dir)
    # Checked before anything is decided or started: a wrong setting fails here.
    settings = spark_settings_for(home, engine, spark_cores, spark_memory)
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
        if settings is not None:
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
