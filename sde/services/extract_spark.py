"""Build a project's extract on Apache Spark: the ``spark`` engine of ``sde extract``.

The same extract as :func:`sde.services.extract.build_extract` (the ``local`` engine),
made of the same parts, so both engines give the same tables and the same manifest:

- the opt-out registers and choices are read once on the driver, at pinned versions, and
  each table's exclusions come from the same :class:`~sde.services.optouts.Exclusions`;
- the linked table is read by Spark at the pinned version; the excluded ``pid`` s are
  broadcast to every task and the rows of excluded patients dropped (a left anti join);
- the rows removed per ``pid`` (an aggregate, at most one row per excluded patient, which
  the driver holds already) are counted by the local engine's
  :class:`~sde.services.extract.RemovalTally`: same totals, same per-rule counts;
- ``pid`` becomes the project pseudonym on Spark's Python workers through ``mapInArrow``
  (:func:`sde.adapters.spark.map_arrow`) running :func:`project_pseudonym_batches`, a
  module-level function calling :func:`~sde.services.extract.pseudonymised_batch`, the
  local engine's own batch step, with :class:`~sde.adapters.arrow_hmac.ArrowProjectPseudonymiser`;
- the extract table is created by delta-rs with the extract's schema (``patient_id`` NOT
  NULL: Spark would make every column nullable) and then overwritten by Spark, which keeps
  the table's schema; the manifest and the ``extract.build`` audit event are written by
  the same code as the local engine's (the event says ``"engine": "spark"``).

**Keys.** The project key is derived from the master key on the driver (the
``ArrowProjectPseudonymiser`` is built there) and travels, pickled with the function, to
the Python workers that compute pseudonyms: the project's sub-key only, never the master
key. In local mode the workers are processes of this machine; on a cluster the executors
receive the project key, as they must for any distributed pseudonymisation
(docs/spark.md says how to protect them).

**Errors.** Spark's messages can quote data (a value that failed a cast, a row), so a
failure inside a Spark stage is a :class:`SparkStageFailed` naming the stage, the project
and the table, and Spark's error class if it has one, never Spark's message.
Delta's refusals that :mod:`sde.adapters.spark` turns into sde errors pass through.

The lake may be on local disk or on S3 (:func:`sde.adapters.spark.use_lake` gives the
session the lake's S3A settings and checks the store answers before anything is read);
a lake on Azure or GCS is refused (see docs/spark.md).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.adapters.arrow_hmac import ArrowProjectPseudonymiser
from sde.errors import InputError
from sde.services.extract import (
    LINK_COLUMN,
    PATIENT_ID,
    ExtractManifest,
    ExtractRequest,
    RemovalTally,
    TableManifest,
    dataset_origin,
    finish_manifest,
    open_source,
    pseudonymised_batch,
    start_manifest,
)
from sde.services.home import Home
from sde.services.optouts import Exclusions, load_opt_outs
from sde.services.ports import AuditSink
from sde.services.spark_engine import (
    SPARK_ENGINE,
    create_table,
    spark_stage,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# --- the engine ----------------------------------------------------------------------------


def project_pseudonym_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    pseudonymiser: ArrowProjectPseudonymiser,
    schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Runs on Spark's Python workers (``mapInArrow``): each batch of kept rows
    (``pid`` and the approved columns) as a batch of the extract table (``schema``),
    through the local engine's :func:`~sde.services.extract.pseudonymised_batch`."""
    for batch in batches:
        if batch.num_rows:
            yield pseudonymised_batch(batch, pseudonymiser, schema)


def build_extract_spark(
    spark: SparkSession,
    home: Home,
    request: ExtractRequest,
    origins: Mapping[str, str],
    *,
    actor: str,
    audit: AuditSink | None = None,
) -> ExtractManifest:
    """:func:`sde.services.extract.build_extract` on Spark: the same tables (row for row),
    schemas, manifest counts and audit event (with ``"engine": "spark"``). Overwrites an
    earlier extract of the project, whichever engine built it, as a new Delta version of
    each table (two, for a table created or whose columns changed: delta-rs creates it
    empty with the extract's schema, then Spark writes the rows)."""
    if not request.datasets:
        raise InputError(f"project {request.project_id} has no approved datasets")
    # The lake's store (S3) configured and answering, or Azure/GCS refused, before
    # anything is read.
    sp.use_lake(spark, home.lake)
    opt_outs = load_opt_outs(home)
    pseudonymiser = ArrowProjectPseudonymiser(home.master_key(), request.project_id)
    out_dir, manifest = start_manifest(home, request, actor, opt_outs.versions)
    for dataset, columns in sorted(request.datasets.items()):
        manifest.tables[dataset] = _extract_table(
            spark,
            home,
            request.project_id,
            dataset,
            list(columns),
            opt_outs.exclusions(request.terms(dataset_origin(origins, dataset))),
            pseudonymiser,
            out_dir,
        )
    finish_manifest(manifest, out_dir, actor=actor, audit=audit, engine=SPARK_ENGINE)
    return manifest


def _extract_table(
    spark: SparkSession,
    home: Home,
    project_id: str,
    dataset: str,
    columns: Sequence[str],
    exclusions: Exclusions,
    pseudonymiser: ArrowProjectPseudonymiser,
    out_dir: delta.Location,
) -> TableManifest:
    from pyspark.sql import functions as spark_functions

    source, pinned = open_source(home, dataset, columns)
    # Counted by delta-rs from the Parquet footers of the pinned version (no Spark job):
    # Spark's rows written plus removed must add up to it (checked below).
    rows_in = pinned.count_rows()
    stage = functools.partial(
        spark_stage,
        subject=f"extract of project {project_id}, table {dataset}",
        consequence=(
            "No rows of this table were committed; the extract's manifest was not updated"
        ),
    )
    with stage("reading the linked table"):
        frame = sp.read_delta(spark, source.location, source.version).select(
            LINK_COLUMN, *source.columns
        )

    tally = RemovalTally(exclusions)
    kept = frame
    excluded = exclusions.excluded()
    if len(excluded):
        with stage("applying the opt-outs"):
            excluded_frame = spark_functions.broadcast(
                spark.createDataFrame(pa.table({LINK_COLUMN: excluded.cast(pa.string())}))
            )
            removed = (
                frame.join(excluded_frame, on=LINK_COLUMN, how="left_semi")
                .groupBy(LINK_COLUMN)
                .count()
                .toArrow()
            )
            kept = frame.join(excluded_frame, on=LINK_COLUMN, how="left_anti")
        tally.add_counts(
            removed.column(LINK_COLUMN).combine_chunks().cast(pa.string()),
            removed.column("count").combine_chunks(),
        )

    target = out_dir / dataset
    create_table(target, source.schema)
    transform = functools.partial(
        project_pseudonym_batches, pseudonymiser=pseudonymiser, schema=source.schema
    )
    with stage("pseudonymising and writing the extract table"):
        version = sp.write_delta(sp.map_arrow(kept, transform, source.schema), target, "overwrite")
    rows_written = delta.dataset(target, version).count_rows()
    if rows_written + tally.rows != rows_in:
        # An internal fault, not a user error: counts that do not add up mean a bug.
        raise RuntimeError(
            f"extract of {dataset} on Spark: rows in ({rows_in}) is not rows written "
            f"({rows_written}) plus rows removed by opt-outs ({tally.rows})"
        )
    return TableManifest(
        dataset=dataset,
        columns=[PATIENT_ID, *source.columns],
        source_version=source.version,
        rows_in_source=rows_in,
        rows_written=rows_written,
        rows_removed_by_opt_out=tally.rows,
        opt_outs_applied=list(exclusions.applied),
        version=version,
        patients_removed_by_opt_out=tally.patients,
        removed_by_rule=tally.by_rule(),
    )
