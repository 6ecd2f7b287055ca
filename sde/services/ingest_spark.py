"""Ingest on Apache Spark: the ``spark`` engine of ``sde ingest``.

The same ingest as :func:`sde.services.ingest.ingest_file` (the ``local`` engine), made
of the same parts, so both engines give the same linked rows, the same quarantine rows
(record numbers, reasons, raw rows), the same sign-in checks and the same manifest:

1. **Read** on the driver by :func:`sde.adapters.csv_arrow.read_raw_batches`, the local
   engine's reader, so records are numbered exactly alike (quoted newlines, blank lines,
   the parts only Python's ``csv`` reads); the well-formed records are staged as Parquet
   (a record number and the raw ``string`` fields), the malformed ones kept on the driver
   (they go to quarantine as the local engine sends them).
2. **Decide** on Spark's Python workers through ``mapInArrow``: each batch through
   :func:`sde.domain.batch_rules.prepare_batch` (the local engine's stateless stage): the
   16-byte digest of every row and, for rows the rules accept, of their key.
3. **Duplicates** as Spark windows, with the local engine's meaning: the first record
   of each row digest (``min(record number)``) keeps it and every later one is an exact
   copy; among the rows that are not copies and pass the rules, the first record of each
   key digest keeps it and every later one repeats the key.
4. **Finish** on the workers (``mapInArrow``): the rules again
   (:func:`~sde.domain.batch_rules.check_batch`, row by row the same answer), free text
   by :func:`sde.services.ingest.deidentify_kept_rows`, ``pid`` by
   :class:`~sde.adapters.arrow_hmac.ArrowLinkagePseudonymiser`, sign-in checks by
   :func:`sde.services.ingest.sign_in_checks`, quarantine rows by
   :func:`sde.services.ingest.refused_records`. The rules run in both stages (the
   first needs only which rows pass, for their key digests; the second their values),
   rather than carrying typed values through the shuffle. The result is staged once
   (Parquet), so the counts are taken from exactly what will be written.
5. **Commit**, after the counts reconcile (records in = rows written + rows quarantined):
   the linked rows, the sign-in checks and the quarantine rows, each one Delta commit by
   Spark (the source file's SHA-256 in the commit's ``userMetadata``); then the manifest
   row and the ``ingest`` audit event by the local engine's own code
   (:func:`sde.services.ingest.record_ingest`, ``"engine": "spark"``). A table that does
   not exist yet is created first by delta-rs (empty, append-only, ``pid`` NOT NULL: a
   table Spark creates has every column nullable), so a first ingest on Spark makes two
   versions of each table where the local engine makes one.

**Keys and values.** The workers get the linkage key (derived from the master key; never
the master key), the sign-in key for a patients' dataset, and for free text the
identifiers of the ``known_from`` files (a broadcast variable). The staged Parquet holds
raw provider rows like the source file does: it is written under the home, readable by
its owner only, and removed when the ingest ends, well or not.

**Errors.** A failure inside a Spark stage is a
:class:`~sde.services.spark_engine.SparkStageFailed` naming the stage, the file, the
dataset and Spark's error class, never Spark's message (it can quote a value).

The lake may be on local disk or on S3 (:func:`sde.adapters.spark.use_lake`); the staged
Parquet is always on the driver's disk under the home (local mode: the workers are this
machine's processes). A lake on Azure or GCS is refused (see docs/spark.md).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.adapters.arrow_hmac import ArrowLinkagePseudonymiser
from sde.adapters.csv_arrow import MalformedRecord, read_raw_batches
from sde.domain.batch_rules import check_batch, prepare_batch
from sde.domain.datasets import (
    DatasetSpec,
    Pii,
    Rejection,
    duplicate_key,
    duplicate_row,
)
from sde.domain.patient_sign_in import sign_in_key
from sde.errors import InputError
from sde.services.home import Home
from sde.services.ingest import (
    BATCH_ROWS,
    QUARANTINE_SCHEMA,
    SIGN_IN_SCHEMA,
    FreeTextDeidentifier,
    IngestResult,
    commit_user_metadata,
    deidentify_kept_rows,
    file_sha256,
    ingested_before,
    known_from_references,
    linked_path,
    linked_schema,
    malformed_records,
    quarantine_path,
    record_ingest,
    refuse_interrupted,
    refused_records,
    sign_in_checks,
    sign_in_path,
    without_held_back,
)
from sde.services.ports import AuditSink
from sde.services.spark_engine import SPARK_ENGINE, spark_stage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RECORD: Final = "_record"
"""The staged column of record numbers (1 = the first record after the header)."""
ROW_DIGEST: Final = ("_d0", "_d1")
KEY_DIGEST: Final = ("_k0", "_k1")
ROW_FIRST: Final = "_row_first"
KEY_FIRST: Final = "_key_first"
KIND: Final = "_kind"
AT: Final = "_at"
LINKED, QUARANTINED, SIGN_IN = "linked", "quarantine", "sign_in"
PART_ROWS: Final = 2_000_000
"""Records per staged Parquet file (Spark reads the files in parallel)."""

_QUARANTINE_COLUMNS: Final = ("row_number", "reason_code", "reason", "raw_row")


def raw_names(width: int) -> list[str]:
    """The staged names of the raw fields (by position: a header may hold anything)."""
    return [f"_c{index}" for index in range(width)]


def _header_batch(batch: pa.RecordBatch, header: Sequence[str]) -> pa.RecordBatch:
    """The raw fields of a staged batch, named by the file's header."""
    return pa.RecordBatch.from_arrays(
        [batch.column(name) for name in raw_names(len(header))], names=list(header)
    )


def _raw_schema(width: int) -> pa.Schema:
    return pa.schema(
        [pa.field(RECORD, pa.int64(), nullable=False)]
        + [pa.field(name, pa.string(), nullable=False) for name in raw_names(width)]
    )


def decided_schema(width: int) -> pa.Schema:
    """Stage 2's batches: the staged columns, the row digest, the key digest (null for a
    row the rules refuse, or without a key). Digests are int64 (Spark has no unsigned)."""
    return pa.schema(
        list(_raw_schema(width))
        + [pa.field(name, pa.int64(), nullable=False) for name in ROW_DIGEST]
        + [pa.field(name, pa.int64()) for name in KEY_DIGEST]
    )


def finished_schema(spec: DatasetSpec) -> pa.Schema:
    """Stage 4's batches: one row per linked row, quarantined record or sign-in check,
    told apart by ``_kind``; the columns of the others are null."""
    linked = linked_schema(spec)
    return pa.schema(
        [pa.field(KIND, pa.string(), nullable=False)]
        + [pa.field(f.name, f.type) for f in linked]
        + [pa.field(name, QUARANTINE_SCHEMA.field(name).type) for name in _QUARANTINE_COLUMNS]
        + [pa.field("check", pa.string()), pa.field(AT, pa.timestamp("us", tz="UTC"))]
    )


# --- on the workers ----------------------------------------------------------------------


def decide_batches(
    batches: Iterator[pa.RecordBatch], *, spec: DatasetSpec, header: Sequence[str]
) -> Iterator[pa.RecordBatch]:
    """Stage 2, on Spark's Python workers: each staged batch with its rows' digests and
    the key digests of the rows the rules accept (:func:`prepare_batch`)."""
    schema = decided_schema(len(header))
    for batch in batches:
        if not batch.num_rows:
            continue
        prepared = prepare_batch(spec, _header_batch(batch, header))
        count = batch.num_rows
        rows = prepared.row_digests.view(np.int64)
        keys = np.zeros((count, 2), dtype=np.int64)
        has_key = np.zeros(count, dtype=bool)
        if spec.key:
            has_key = np.asarray(prepared.checked.passed, dtype=bool).copy()
            keys[has_key] = prepared.key_digests.view(np.int64)
        no_key = ~has_key
        yield pa.RecordBatch.from_arrays(
            [
                *batch.select([RECORD, *raw_names(len(header))]).columns,
                pa.array(rows[:, 0]),
                pa.array(rows[:, 1]),
                pa.array(keys[:, 0], mask=no_key),
                pa.array(keys[:, 1], mask=no_key),
            ],
            schema=schema,
        )


@dataclass(frozen=True)
class FinishContext:
    """What stage 4's workers need (pickled with the function): derived keys, never the
    master key; the ``known_from`` identifiers as a Spark broadcast variable."""

    spec: DatasetSpec
    header: tuple[str, ...]
    source_file: str
    sha256: str
    pseudonymiser: ArrowLinkagePseudonymiser
    sign_in_key: bytes | None
    deidentifier: FreeTextDeidentifier | None
    known_by_patient: Any  # a pyspark Broadcast of dict[str, list[tuple[Pii, str]]], or None
    at: dt.datetime


@functools.cache
def _worker_presidio() -> FreeTextDeidentifier:
    """One Presidio de-identifier per Python worker process (its models load once)."""
    from sde.adapters.presidio import PresidioDeidentifier

    return PresidioDeidentifier()


def finish_batches(
    batches: Iterator[pa.RecordBatch], *, context: FinishContext
) -> Iterator[pa.RecordBatch]:
    """Stage 4, on Spark's Python workers: each decided batch (with ``_row_first`` and
    ``_key_first``) as its linked rows, quarantine rows and sign-in checks."""
    for batch in batches:
        if batch.num_rows:
            yield finish_batch(batch, context)


def finish_batch(batch: pa.RecordBatch, context: FinishContext) -> pa.RecordBatch:
    """One decided batch, finished (see :func:`finish_batches`). Rows arrive in any order
    and any grouping: each row's duplicates are decided already, and every other rule is
    a rule of the row alone."""
    spec = context.spec
    header = context.header
    raw = _header_batch(batch, header)
    numbers = batch.column(RECORD).to_numpy()
    row_first = batch.column(ROW_FIRST).to_numpy()
    # null where the row is not a candidate (a copy, refused by the rules, or no key)
    key_firsts = pc.fill_null(batch.column(KEY_FIRST), -1).to_numpy()
    rejected: list[tuple[int, Rejection, int]] = []  # (record number, why, row index)

    copies = np.flatnonzero(row_first != numbers)
    rejected.extend((int(numbers[i]), duplicate_row(int(row_first[i])), int(i)) for i in copies)
    fresh = np.flatnonzero(row_first == numbers)
    rows = raw.take(pa.array(fresh, pa.int64()))
    checked = check_batch(spec, rows)
    rejected.extend(
        (int(numbers[fresh[i]]), why, int(fresh[i])) for i, why in checked.rejections.items()
    )
    passed = np.flatnonzero(checked.passed)
    if spec.key and len(passed):
        key_first = key_firsts[fresh[passed]]
        mine = numbers[fresh[passed]]
        repeats = key_first != mine
        rejected.extend(
            (int(mine[i]), duplicate_key(spec.key, int(key_first[i])), int(fresh[passed[i]]))
            for i in np.flatnonzero(repeats)
        )
        passed = passed[~repeats]
    kept = pa.array(passed, pa.int64())
    digits = checked.nhs_numbers.take(kept)
    outputs = {name: array.take(kept) for name, array in checked.values.items()}
    if checked.free_text:
        deidentifier = context.deidentifier or _worker_presidio()
        known = context.known_by_patient.value if context.known_by_patient is not None else {}
        held_back = deidentify_kept_rows(
            spec, deidentifier, known, rows, kept, digits, checked, outputs
        )
        if held_back:
            rejected.extend(
                (int(numbers[fresh[passed[i]]]), why, int(fresh[passed[i]]))
                for i, why in held_back.items()
            )
            passed, digits, outputs = without_held_back(held_back, passed, digits, outputs)
    pids = context.pseudonymiser.pid_array(digits)
    if pids.null_count:  # pragma: no cover - the rules let valid numbers only through
        raise AssertionError("a row without a pid reached the linked zone")
    signed: tuple[list[str], list[str]] = ([], [])
    if spec.sign_in is not None and context.sign_in_key is not None and len(passed):
        signed = sign_in_checks(spec, context.sign_in_key, rows.take(pa.array(passed)), pids)
    return _union(context, raw, rejected, pids, outputs, signed)


def _union(
    context: FinishContext,
    raw: pa.RecordBatch,
    rejected: list[tuple[int, Rejection, int]],
    pids: pa.Array,
    outputs: Mapping[str, pa.Array],
    signed: tuple[list[str], list[str]],
) -> pa.RecordBatch:
    """The finished rows of a batch as one batch of :func:`finished_schema`."""
    schema = finished_schema(context.spec)
    linked = linked_schema(context.spec)
    quarantined = refused_records(
        context.header, context.source_file, context.sha256, raw, rejected, context.at
    )
    written, rejects, checks = len(pids), len(quarantined), len(signed[0])
    total = written + rejects + checks
    columns: dict[str, pa.Array] = {
        KIND: pa.array([LINKED] * written + [QUARANTINED] * rejects + [SIGN_IN] * checks),
    }

    def padded(before: int, values: pa.Array, after: int) -> pa.Array:
        return pa.concat_arrays(
            [pa.nulls(before, values.type), values, pa.nulls(after, values.type)]
        )

    columns[linked.field(0).name] = pa.concat_arrays(
        [pids.cast(pa.string()), pa.nulls(rejects, pa.string()), pa.array(signed[0], pa.string())]
    )
    for field in list(linked)[1:]:
        columns[field.name] = padded(0, outputs[field.name].cast(field.type), rejects + checks)
    for name in _QUARANTINE_COLUMNS:
        kind = schema.field(name).type
        columns[name] = padded(written, pa.array([q[name] for q in quarantined], kind), checks)
    columns["check"] = padded(written + rejects, pa.array(signed[1], pa.string()), 0)
    columns[AT] = pa.array([context.at] * total, pa.timestamp("us", tz="UTC"))
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


# --- on the driver -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Staged:
    folder: Path
    rows_in: int
    malformed: tuple[MalformedRecord, ...]


def _stage_raw(
    path: Path, header: Sequence[str], folder: Path, batch_rows: int, bar: tqdm[Any]
) -> _Staged:
    """Read the file with the local engine's reader; write its well-formed records to
    Parquet files in ``folder`` (at least one, maybe empty); keep the malformed ones."""
    schema = _raw_schema(len(header))
    names = [RECORD, *raw_names(len(header))]
    rows_in = 0
    bad: list[MalformedRecord] = []
    part = 0
    in_part = 0
    writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema)
    try:
        for raw in read_raw_batches(path, header, batch_records=batch_rows, on_bytes=bar.update):
            rows_in += raw.records
            bad.extend(raw.malformed)
            if not raw.columns.num_rows:
                continue
            if in_part >= PART_ROWS:
                writer.close()
                part += 1
                in_part = 0
                writer = pq.ParquetWriter(folder / f"part-{part:05d}.parquet", schema)
            writer.write_batch(
                pa.RecordBatch.from_arrays([raw.numbers, *raw.columns.columns], names=names).cast(
                    schema
                )
            )
            in_part += raw.columns.num_rows
    finally:
        writer.close()
    return _Staged(folder, rows_in, tuple(bad))


def _ensure_table(target: delta.Location, schema: pa.Schema, *, dataset: str, table: str) -> None:
    """Create ``target`` with delta-rs (empty, append-only, ``schema`` with its NOT NULLs)
    if it does not exist; refuse if it exists with other columns (as the local engine's
    append does): Spark then appends, keeping the table's schema."""
    current = delta.version(target)
    if current is None:
        delta.append(target, schema.empty_table())  # created append-only, as locally
        return
    found = delta.dataset(target, current).schema
    if [(f.name, f.type) for f in found] != [(f.name, f.type) for f in schema]:
        raise InputError(
            f"the data's columns do not match the existing table {table} of {dataset}; "
            "was its dataset spec changed?"
        )


def ingest_file_spark(
    spark: SparkSession,
    home: Home,
    spec: DatasetSpec,
    path: Path,
    header: list[str],
    *,
    audit: AuditSink | None = None,
    progress: bool = False,
    actor: str = "system",
    references: Mapping[str, Path] | None = None,
    deidentifier: FreeTextDeidentifier | None = None,
    batch_rows: int = BATCH_ROWS,
) -> IngestResult:
    """:func:`sde.services.ingest.ingest_file` on Spark, for a file whose ``header`` is
    checked (and allowed by the ``sde.ingest`` policy) already: the same tables (row for
    row), the same manifest row, the ``ingest`` audit event with ``"engine": "spark"``.

    ``deidentifier`` (for a dataset with free text) is pickled to the workers; by default
    each worker process loads Presidio once."""
    # The lake's store (S3) configured and answering, or Azure/GCS refused, before
    # anything is read.
    sp.use_lake(spark, home.lake)
    sha256 = file_sha256(path)
    skipped = ingested_before(home, spec, path, sha256, audit=audit, actor=actor)
    if skipped is not None:
        return skipped
    target = linked_path(home, spec.name)
    refuse_interrupted(target, spec, path, sha256)
    known = known_from_references(home, spec, path, header, references or {})

    staging = Path(tempfile.mkdtemp(prefix=".ingest-spark-", dir=home.root))
    os.chmod(staging, 0o700)
    try:
        return _ingest_staged(
            spark,
            home,
            spec,
            path,
            header,
            target,
            sha256,
            staging,
            known,
            audit=audit,
            progress=progress,
            actor=actor,
            deidentifier=deidentifier,
            batch_rows=batch_rows,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _ingest_staged(
    spark: SparkSession,
    home: Home,
    spec: DatasetSpec,
    path: Path,
    header: list[str],
    target: delta.Location,
    sha256: str,
    staging: Path,
    known: Mapping[str, list[tuple[Pii, str]]],
    *,
    audit: AuditSink | None,
    progress: bool,
    actor: str,
    deidentifier: FreeTextDeidentifier | None,
    batch_rows: int,
) -> IngestResult:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    subject = f"ingest of {path.name} for dataset {spec.name}"
    nothing = "Nothing of this file was committed"
    partly = (
        "The file's linked rows were committed, its manifest row was not: ingesting it "
        "again is refused until the linked table is restored to the version before"
    )
    stage = functools.partial(spark_stage, subject=subject)
    raw_folder = staging / "raw"
    raw_folder.mkdir()
    with tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=f"ingest {spec.name} (read)",
        disable=not progress,
        leave=False,
    ) as bar:
        staged = _stage_raw(path, header, raw_folder, batch_rows, bar)

    at = dt.datetime.now(dt.UTC)
    context = FinishContext(
        spec=spec,
        header=tuple(header),
        source_file=path.name,
        sha256=sha256,
        pseudonymiser=ArrowLinkagePseudonymiser(home.master_key()),
        sign_in_key=sign_in_key(home.master_key()) if spec.sign_in is not None else None,
        deidentifier=deidentifier,
        known_by_patient=spark.sparkContext.broadcast(dict(known)) if known else None,
        at=at,
    )
    finished_folder = staging / "finished"
    finish_input = decided_schema(len(header)).append(pa.field(ROW_FIRST, pa.int64()))
    finish_input = finish_input.append(pa.field(KEY_FIRST, pa.int64()))
    with stage("checking, pseudonymising and de-identifying the rows", consequence=nothing):
        raw = spark.read.schema(sp.spark_schema(_raw_schema(len(header)))).parquet(str(raw_folder))
        decided = sp.map_arrow(
            raw,
            functools.partial(decide_batches, spec=spec, header=tuple(header)),
            decided_schema(len(header)),
        )
        decided = decided.withColumn(ROW_FIRST, F.min(RECORD).over(Window.partitionBy(*ROW_DIGEST)))
        if spec.key:
            fresh = F.col(RECORD) == F.col(ROW_FIRST)
            candidate = F.when(fresh & F.col(KEY_DIGEST[0]).isNotNull(), F.col(RECORD))
            key_first = F.min(candidate).over(Window.partitionBy(*KEY_DIGEST))
        else:
            key_first = F.lit(None).cast("long")
        decided = decided.withColumn(KEY_FIRST, key_first)
        finished = sp.map_arrow(
            decided.select(*finish_input.names),
            functools.partial(finish_batches, context=context),
            finished_schema(spec),
        )
        try:
            finished.write.parquet(str(finished_folder))
        finally:
            if context.known_by_patient is not None:
                # The identifiers leave the executors' memory and disk with the stage.
                context.known_by_patient.destroy()

    results = spark.read.parquet(str(finished_folder))
    with stage("counting the rows", consequence=nothing):
        kinds = {row[KIND]: int(row["count"]) for row in results.groupBy(KIND).count().collect()}
        reasons = Counter(
            {
                row["reason_code"]: int(row["count"])
                for row in results.filter(F.col(KIND) == QUARANTINED)
                .groupBy("reason_code")
                .count()
                .collect()
            }
        )
    bad = malformed_records(header, path.name, sha256, staged.malformed, at)
    reasons.update(str(q["reason_code"]) for q in bad)
    rows_written = kinds.get(LINKED, 0)
    rows_quarantined = kinds.get(QUARANTINED, 0) + len(bad)
    if staged.rows_in != rows_written + rows_quarantined:
        # Checked before any commit: a miscount means a bug, and nothing is written.
        raise RuntimeError(
            f"ingest of {path.name} on Spark: rows in ({staged.rows_in}) is not rows "
            f"written ({rows_written}) plus rows quarantined ({rows_quarantined})"
        )

    metadata = commit_user_metadata(sha256, path.name)
    schema = linked_schema(spec)
    _ensure_table(target, schema, dataset=spec.name, table="linked")
    with stage("writing the linked table", consequence=nothing):
        linked_rows = results.filter(F.col(KIND) == LINKED).select(*schema.names)
        linked_version = sp.write_delta(linked_rows, target, "append", user_metadata=metadata)
    checks = kinds.get(SIGN_IN, 0)
    if checks:
        sign_in = sign_in_path(home)
        _ensure_table(sign_in, SIGN_IN_SCHEMA, dataset=spec.name, table="patient_sign_in")
        with stage("writing the sign-in checks", consequence=partly):
            rows = results.filter(F.col(KIND) == SIGN_IN).select(
                schema.names[0],
                "check",
                F.lit(spec.name).alias("dataset"),
                F.lit(sha256).alias("source_sha256"),
                F.col(AT).alias("loaded_at"),
            )
            sp.write_delta(rows, sign_in, "append", user_metadata=metadata)
    quarantine_version = None
    if rows_quarantined:
        quarantine = quarantine_path(home, spec.name)
        _ensure_table(quarantine, QUARANTINE_SCHEMA, dataset=spec.name, table="quarantine")
        with stage("writing the quarantine table", consequence=partly):
            rows = results.filter(F.col(KIND) == QUARANTINED).select(
                F.lit(path.name).alias("source_file"),
                F.lit(sha256).alias("source_sha256"),
                *_QUARANTINE_COLUMNS,
                F.col(AT).alias("quarantined_at"),
            )
            if bad:
                rows = rows.unionByName(
                    spark.createDataFrame(pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA))
                )
            quarantine_version = sp.write_delta(rows, quarantine, "append", user_metadata=metadata)

    result = IngestResult(
        dataset=spec.name,
        source_file=path.name,
        source_sha256=sha256,
        rows_in=staged.rows_in,
        rows_written=rows_written,
        rows_quarantined=rows_quarantined,
        quarantined_by_reason=dict(sorted(reasons.items())),
        linked_version=linked_version,
        quarantine_version=quarantine_version,
        sign_in_checks=checks,
    )
    record_ingest(home, result, actor=actor, audit=audit, engine=SPARK_ENGINE)
    return result
