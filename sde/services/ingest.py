"""Ingest: a provider file -> a pseudonymised Delta table in the linked zone.

For each file (streamed in batches, so memory stays flat):

1. the header must match the dataset spec exactly (every column classified); then,
   given a policy engine, the ``sde.ingest`` policy decides whether the spec is
   acceptable for this file (its header and the spec's columns), before any row is
   read: a refusal raises ``PolicyDenied`` naming its reasons, and nothing is written;
2. each row is checked (NHS number Modulus 11, required fields, ISO dates, numbers,
   allowed values); exact copies of earlier rows and repeated keys are caught;
3. good rows get ``pid`` (keyed pseudonym of the NHS number, distinct values once per
   batch), quasi-identifiers are generalised, dropped columns never leave, free text is
   de-identified (the row's own identifiers, and those of the same patient in the
   ``known_from`` files, are removed in any layout);
4. bad rows go to ``quarantine/<dataset>`` with a reason code and a sentence naming the
   column and rule (never the value), with the raw row for operators;
5. one manifest row records the file's SHA-256 and the counts, after checking
   ``rows_in = rows_written + rows_quarantined``. The same file is never ingested twice.

Each file is one commit on the linked table: if anything fails part-way, nothing is
written. Writes happen in the order linked, quarantine, manifest.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from tqdm import tqdm

from sde.adapters import delta
from sde.adapters.arrow_hmac import ArrowLinkagePseudonymiser
from sde.adapters.csv_arrow import (
    MalformedRecord,
    RawBatch,
    python_records,
    read_ahead,
    read_raw_batches,
)
from sde.domain.batch_rules import (
    BatchCheck,
    NumberIndex,
    PreparedBatch,
    SeenTable,
    first_seen,
    prepare_batch,
)
from sde.domain.datasets import (
    PID,
    CheckedRow,
    DatasetSpec,
    DuplicateFinder,
    OutputType,
    Pii,
    Rejection,
    check_header,
    check_row,
    deidentification_failed,
    duplicate_key,
    duplicate_row,
    malformed,
    parse_spec,
)
from sde.domain.generalise import parse_date
from sde.domain.nhs_number import normalise
from sde.domain.patient_sign_in import sign_in_check, sign_in_key
from sde.domain.policy import INGEST, IngestColumnFacts, PolicyEngine, make_ingest_input
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError, NotFound, StateError
from sde.services.home import Home
from sde.services.ports import AuditSink

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MANIFEST_TABLE = "ingest"
BATCH_ROWS = 262_144
"""Records per batch."""
Method = Literal["batch", "rowwise"]
"""How rows are read and checked: ``batch`` (Arrow batches, the default) or ``rowwise``
(Python's ``csv`` and ``check_row`` one row at a time: the reference, kept for the
equivalence tests and as the benchmark's baseline)."""
COMMIT_SHA_KEY = "sde.source_sha256"

_ARROW_TYPES: dict[OutputType, pa.DataType] = {
    OutputType.STRING: pa.string(),
    OutputType.DATE: pa.date32(),
    OutputType.FLOAT: pa.float64(),
    OutputType.INTEGER: pa.int64(),
    OutputType.YEAR: pa.int32(),
}
_UTC = pa.timestamp("us", tz="UTC")

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("row_number", pa.int64(), nullable=False),
        pa.field("reason_code", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("raw_row", pa.string(), nullable=False),
        pa.field("quarantined_at", _UTC, nullable=False),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("rows_in", pa.int64(), nullable=False),
        pa.field("rows_written", pa.int64(), nullable=False),
        pa.field("rows_quarantined", pa.int64(), nullable=False),
        pa.field("quarantined_by_reason", pa.string(), nullable=False),
        pa.field("linked_version", pa.int64(), nullable=False),
        pa.field("quarantine_version", pa.int64()),
        pa.field("ingested_at", _UTC, nullable=False),
        pa.field("ingested_by", pa.string(), nullable=False),
    ]
)


# --- specs -------------------------------------------------------------------------------


def _spec_dir() -> Traversable:
    return resources.files("sde").joinpath("datasets")


def shipped_datasets() -> list[str]:
    """Names of the dataset specs shipped with sde (``sde/datasets/*.yaml``)."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _spec_dir().iterdir()
        if entry.name.endswith(".yaml")
    )


def load_spec(name: str) -> DatasetSpec:
    """A shipped dataset spec by name."""
    if name not in shipped_datasets():
        raise NotFound(
            f"no dataset spec named {name!r}; shipped specs: {', '.join(shipped_datasets())}"
        )
    text = _spec_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return _parse_yaml(text, source=f"{name}.yaml")


def load_spec_file(path: Path) -> DatasetSpec:
    """A dataset spec from a YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read dataset spec {path}: {exc.strerror}") from None
    return _parse_yaml(text, source=path.name)


def _parse_yaml(text: str, *, source: str) -> DatasetSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"dataset spec {source} is not valid YAML{where}") from None
    return parse_spec(data, source=source)


# --- paths and results -------------------------------------------------------------------


SIGN_IN_TABLE = "patient_sign_in"
SIGN_IN_SCHEMA = pa.schema(
    [
        pa.field(PID, pa.string(), nullable=False),
        pa.field("check", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("loaded_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def sign_in_path(home: Home) -> delta.Location:
    """Patients' sign-in checks (:mod:`sde.domain.patient_sign_in`): beside the linked
    tables, never a dataset, never extracted."""
    return home.linked / SIGN_IN_TABLE


def linked_path(home: Home, dataset: str) -> delta.Location:
    return home.linked / dataset


def quarantine_path(home: Home, dataset: str) -> delta.Location:
    return home.quarantine / dataset


def manifest_path(home: Home) -> delta.Location:
    return home.manifests / MANIFEST_TABLE


class FreeTextDeidentifier(Protocol):
    """Replaces identifiers in free text with typed placeholders; ``known`` are the
    patient's own identifiers (kind, raw value), to be removed in any layout."""

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str: ...


@dataclass(frozen=True)
class IngestResult:
    dataset: str
    source_file: str
    source_sha256: str
    rows_in: int
    rows_written: int
    rows_quarantined: int
    quarantined_by_reason: Mapping[str, int] = field(default_factory=dict)
    linked_version: int | None = None
    quarantine_version: int | None = None
    sign_in_checks: int = 0
    """Patients' sign-in checks written beside the linked table (a patients' dataset)."""
    skipped: bool = False
    """True if this file (same SHA-256, same dataset) was ingested before: nothing added;
    the counts are those recorded then."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest_manifest(home: Home) -> list[dict[str, object]]:
    """Every manifest row, oldest first (empty if nothing was ingested yet)."""
    path = manifest_path(home)
    if not delta.exists(path):
        return []
    rows = delta.read(path).to_pylist()
    return sorted(rows, key=lambda r: (r["ingested_at"], r["dataset"], r["source_file"]))


def _previous(home: Home, dataset: str, sha256: str) -> dict[str, object] | None:
    for row in ingest_manifest(home):
        if row["dataset"] == dataset and row["source_sha256"] == sha256:
            return row
    return None


# --- the ingest policy -------------------------------------------------------------------


def ingest_policy_input(spec: DatasetSpec, header: Sequence[str]) -> dict[str, object]:
    """The ``sde.ingest`` input for reading a file with ``header`` for ``spec``: the spec's
    columns (the identifier's kind of identifying data is ``nhs_number``) and, for each
    ``known_from`` dataset, the kinds its shipped spec tags (``None`` when there is none)."""
    known_from: dict[str, list[str] | None] = {}
    for name in spec.known_from:
        try:
            ref = load_spec(name)
        except NotFound:
            known_from[name] = None
            continue
        known_from[name] = [c.known_kind.value for c in ref.known_columns if c.known_kind]
    return make_ingest_input(
        dataset=spec.name,
        origin=spec.origin.value,
        columns=[
            IngestColumnFacts(
                name=c.name,
                role=c.role.value,
                type=c.type.value,
                pii=None if c.known_kind is None else c.known_kind.value,
                generalise=c.generalise,
            )
            for c in spec.columns
        ],
        header=header,
        known_from=known_from,
    )


def require_spec_allowed(
    engine: PolicyEngine, spec: DatasetSpec, header: Sequence[str], *, source: str
) -> None:
    """Ask the ``sde.ingest`` policy whether ``spec`` is acceptable for a file named
    ``source`` with ``header``; raise ``PolicyDenied`` with its reasons if not."""
    decision = engine.decide(INGEST, ingest_policy_input(spec, header))
    decision.require(f"ingest of {source} with dataset spec {spec.name}")


# --- ingest ------------------------------------------------------------------------------


def ingest_file(
    home: Home,
    spec: DatasetSpec,
    path: Path,
    *,
    audit: AuditSink | None = None,
    progress: bool = False,
    actor: str = "system",
    references: Mapping[str, Path] | None = None,
    deidentifier: FreeTextDeidentifier | None = None,
    batch_rows: int = BATCH_ROWS,
    engine: PolicyEngine | None = None,
    method: Method = "batch",
    spark: SparkSession | None = None,
) -> IngestResult:
    """Ingest one provider file for ``spec``. ``references`` name the files of the
    spec's ``known_from`` datasets (default ``<home>/sources/<name>.csv``).

    Given ``engine``, the ``sde.ingest`` policy decides first, from the file's header and
    the spec alone: a refusal raises ``PolicyDenied`` before any row is read, and nothing is
    written. ``method`` is for tests and benchmarks (see :data:`Method`): both give the
    same result. Given a ``spark`` session, the rows are checked, pseudonymised and written
    on Spark (:mod:`sde.services.ingest_spark`): the same tables and manifest."""
    header = _checked_header(spec, path)
    if engine is not None:
        require_spec_allowed(engine, spec, header, source=path.name)
    return _engine(spark, method)(
        home,
        spec,
        path,
        header,
        audit=audit,
        progress=progress,
        actor=actor,
        references=references,
        deidentifier=deidentifier,
        batch_rows=batch_rows,
    )


def _engine(spark: SparkSession | None, method: Method = "batch") -> Callable[..., IngestResult]:
    """How a checked file is ingested: locally (``_ingest_checked``), or on ``spark``
    (:func:`sde.services.ingest_spark.ingest_file_spark`); both take the same arguments."""
    if spark is None:
        return functools.partial(_ingest_checked, method=method)
    from sde.services.ingest_spark import ingest_file_spark

    return functools.partial(ingest_file_spark, spark)


def _checked_header(spec: DatasetSpec, path: Path) -> list[str]:
    """The header of ``path``, once it matches ``spec`` (``check_header``)."""
    if not path.is_file():
        raise NotFound(f"no file at {path}")
    header = _read_header(path)
    check_header(spec, header, source=path.name)
    return header


def _ingest_checked(
    home: Home,
    spec: DatasetSpec,
    path: Path,
    header: list[str],
    *,
    audit: AuditSink | None,
    progress: bool,
    actor: str,
    references: Mapping[str, Path] | None,
    deidentifier: FreeTextDeidentifier | None,
    batch_rows: int,
    method: Method = "batch",
) -> IngestResult:
    sha256 = file_sha256(path)
    skipped = ingested_before(home, spec, path, sha256, audit=audit, actor=actor)
    if skipped is not None:
        return skipped
    target = linked_path(home, spec.name)
    refuse_interrupted(target, spec, path, sha256)

    known_by_patient = known_from_references(home, spec, path, header, references or {})
    if spec.free_text_columns and deidentifier is None:
        from sde.adapters.presidio import PresidioDeidentifier  # local: costly import

        deidentifier = PresidioDeidentifier()

    run = _Run(
        spec=spec,
        header=header,
        source_file=path.name,
        sha256=sha256,
        pseudonymiser=LinkagePseudonymiser(home.master_key()),
        batch_pseudonymiser=ArrowLinkagePseudonymiser(home.master_key()),
        method=method,
        deidentifier=deidentifier,
        known_by_patient=known_by_patient,
        batch_rows=batch_rows,
        sign_in_key=sign_in_key(home.master_key()) if spec.sign_in is not None else None,
    )
    schema = linked_schema(spec)
    with tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=f"ingest {spec.name}",
        file=sys.stderr,
        disable=not progress,
        leave=False,
    ) as bar:
        reader = pa.RecordBatchReader.from_batches(schema, run.batches(path, bar))
        try:
            linked_version = delta.append(
                target,
                reader,
                custom_metadata={COMMIT_SHA_KEY: sha256, "sde.source_file": path.name},
            )
        except Exception:
            # The generator's own error, not delta-rs's wrapping of it (which would
            # include a traceback); nothing was committed.
            if run.error is not None:
                raise run.error from None
            raise

    if run.sign_in_pids:
        delta.append(
            sign_in_path(home),
            pa.table(
                {
                    PID: pa.array(run.sign_in_pids, pa.string()),
                    "check": pa.array(run.sign_in_checks, pa.string()),
                    "dataset": pa.array([spec.name] * len(run.sign_in_pids), pa.string()),
                    "source_sha256": pa.array([sha256] * len(run.sign_in_pids), pa.string()),
                    "loaded_at": pa.array(
                        [dt.datetime.now(dt.UTC)] * len(run.sign_in_pids),
                        pa.timestamp("us", tz="UTC"),
                    ),
                },
                schema=SIGN_IN_SCHEMA,
            ),
            custom_metadata={COMMIT_SHA_KEY: sha256},
        )
    quarantine_version = None
    if run.quarantined:
        quarantine_version = delta.append(
            quarantine_path(home, spec.name),
            pa.Table.from_pylist(run.quarantined, schema=QUARANTINE_SCHEMA),
            custom_metadata={COMMIT_SHA_KEY: sha256},
        )
    result = IngestResult(
        dataset=spec.name,
        source_file=path.name,
        source_sha256=sha256,
        rows_in=run.rows_in,
        rows_written=run.rows_written,
        rows_quarantined=len(run.quarantined),
        quarantined_by_reason=dict(
            sorted(Counter(str(q["reason_code"]) for q in run.quarantined).items())
        ),
        linked_version=linked_version,
        quarantine_version=quarantine_version,
        sign_in_checks=len(run.sign_in_pids),
    )
    record_ingest(home, result, actor=actor, audit=audit)
    return result


def ingested_before(
    home: Home,
    spec: DatasetSpec,
    path: Path,
    sha256: str,
    *,
    audit: AuditSink | None,
    actor: str,
) -> IngestResult | None:
    """The recorded result if the manifest has this file (same SHA-256) for this dataset
    already (an ``ingest.skipped`` event is audited), else None."""
    previous = _previous(home, spec.name, sha256)
    if previous is None:
        return None
    result = IngestResult(
        dataset=spec.name,
        source_file=path.name,
        source_sha256=sha256,
        rows_in=_int(previous["rows_in"]),
        rows_written=_int(previous["rows_written"]),
        rows_quarantined=_int(previous["rows_quarantined"]),
        quarantined_by_reason=json.loads(str(previous["quarantined_by_reason"])),
        linked_version=_int(previous["linked_version"]),
        skipped=True,
    )
    if audit is not None:
        audit.record(actor, "ingest.skipped", spec.name, _audit_details(result))
    return result


def commit_source_sha(commit: Mapping[str, Any]) -> str | None:
    """The SHA-256 of the source file a Delta commit was made from, if it says: delta-rs
    writes it as the commit's ``sde.source_sha256``; Spark (which cannot set custom
    keys) in the JSON object of the commit's ``userMetadata``."""
    sha = commit.get(COMMIT_SHA_KEY)
    if isinstance(sha, str):
        return sha
    user = commit.get("userMetadata")
    if isinstance(user, str) and user.startswith("{"):
        try:
            found = json.loads(user).get(COMMIT_SHA_KEY)
        except (ValueError, AttributeError):
            return None
        return found if isinstance(found, str) else None
    return None


def commit_user_metadata(sha256: str, source_file: str) -> str:
    """What Spark writes as a commit's ``userMetadata`` (read by :func:`commit_source_sha`)."""
    return json.dumps({COMMIT_SHA_KEY: sha256, "sde.source_file": source_file}, sort_keys=True)


def refuse_interrupted(target: delta.Location, spec: DatasetSpec, path: Path, sha256: str) -> None:
    """Refuse (``StateError``) if the linked table has a commit from this file that the
    manifest does not record: an earlier ingest stopped between the two."""
    for commit in delta.history(target):
        if commit_source_sha(commit) == sha256:
            raise StateError(
                f"linked table {spec.name} has a commit (version {commit.get('version')}) from "
                f"{path.name} that the manifest does not record: an earlier ingest was "
                "interrupted. Restore the table to the version before it, then ingest again"
            )


def record_ingest(
    home: Home,
    result: IngestResult,
    *,
    actor: str,
    audit: AuditSink | None,
    engine: str = "local",
) -> None:
    """Check that ``result``'s counts reconcile, then write its manifest row and audit
    the ``ingest`` event (naming the ``engine``): the last steps of an ingest, whichever
    engine ran it."""
    _check_counts(result)
    delta.append(
        manifest_path(home),
        pa.Table.from_pylist(
            [
                {
                    "dataset": result.dataset,
                    "source_file": result.source_file,
                    "source_sha256": result.source_sha256,
                    "rows_in": result.rows_in,
                    "rows_written": result.rows_written,
                    "rows_quarantined": result.rows_quarantined,
                    "quarantined_by_reason": json.dumps(
                        dict(result.quarantined_by_reason), sort_keys=True
                    ),
                    "linked_version": result.linked_version,
                    "quarantine_version": result.quarantine_version,
                    "ingested_at": dt.datetime.now(dt.UTC),
                    "ingested_by": actor,
                }
            ],
            schema=MANIFEST_SCHEMA,
        ),
    )
    if audit is not None:
        audit.record(actor, "ingest", result.dataset, {**_audit_details(result), "engine": engine})


def ingest_all(
    home: Home,
    *,
    audit: AuditSink | None = None,
    progress: bool = False,
    actor: str = "system",
    engine: PolicyEngine | None = None,
    spark: SparkSession | None = None,
) -> list[IngestResult]:
    """Ingest every shipped dataset whose ``<name>.csv`` is in ``home.sources``.

    Every file's header is checked, and given ``engine`` the ``sde.ingest`` policy asked
    about every spec, before anything is ingested: one refusal (``InputError``,
    ``PolicyDenied``) stops them all with nothing written. Given a ``spark`` session,
    each file is ingested on Spark."""
    planned: list[tuple[DatasetSpec, Path, list[str]]] = []
    for name in shipped_datasets():
        path = home.sources / f"{name}.csv"
        if not path.is_file():
            continue
        spec = load_spec(name)
        header = _checked_header(spec, path)
        if engine is not None:
            require_spec_allowed(engine, spec, header, source=path.name)
        planned.append((spec, path, header))
    results = []
    run = _engine(spark)
    deidentifier: FreeTextDeidentifier | None = None
    for spec, path, header in planned:
        if spec.free_text_columns and deidentifier is None and spark is None:
            # One for every file (on Spark, each worker loads its own).
            from sde.adapters.presidio import PresidioDeidentifier

            deidentifier = PresidioDeidentifier()
        results.append(
            run(
                home,
                spec,
                path,
                header,
                audit=audit,
                progress=progress,
                actor=actor,
                references=None,
                deidentifier=deidentifier,
                batch_rows=BATCH_ROWS,
            )
        )
    return results


def linked_schema(spec: DatasetSpec) -> pa.Schema:
    """The linked table's schema: ``pid`` first, then the spec's outputs."""
    return pa.schema(
        [pa.field(PID, pa.string(), nullable=False)]
        + [pa.field(name, _ARROW_TYPES[kind]) for name, kind in spec.outputs]
    )


def _check_counts(result: IngestResult) -> None:
    # An internal fault, not a user error: counts that do not add up mean a bug.
    if result.rows_in != result.rows_written + result.rows_quarantined:
        raise RuntimeError(
            f"ingest of {result.source_file}: rows in ({result.rows_in}) is not rows written "
            f"({result.rows_written}) plus rows quarantined ({result.rows_quarantined})"
        )
    if sum(result.quarantined_by_reason.values()) != result.rows_quarantined:
        raise RuntimeError(f"ingest of {result.source_file}: quarantine counts do not add up")


def _audit_details(result: IngestResult) -> dict[str, object]:
    return {
        "source_file": result.source_file,
        "sha256": result.source_sha256,
        "rows_in": result.rows_in,
        "rows_written": result.rows_written,
        "rows_quarantined": result.rows_quarantined,
        "quarantined_by_reason": dict(result.quarantined_by_reason),
        "linked_version": result.linked_version,
        "skipped": result.skipped,
        **({"sign_in_checks": result.sign_in_checks} if result.sign_in_checks else {}),
    }


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


# --- reading -----------------------------------------------------------------------------


def _rows(path: Path, bar: tqdm[Any] | None = None) -> Iterator[list[str]]:
    """CSV records of ``path`` (header first) by Python's ``csv``: the reference reader
    (:func:`sde.adapters.csv_arrow.python_records`). Quoted fields may hold newlines."""
    return python_records(path, None if bar is None else bar.update)


def _read_header(path: Path) -> list[str]:
    for record in _rows(path):
        return [name.strip() for name in record]
    raise InputError(f"{path.name} is empty: a provider file starts with a header row")


def known_from_references(
    home: Home,
    spec: DatasetSpec,
    path: Path,
    header: Sequence[str],
    references: Mapping[str, Path],
) -> dict[str, list[tuple[Pii, str]]]:
    """For every patient in ``path``: the identifiers the ``known_from`` files hold about
    them (all rows for that NHS number, duplicates included)."""
    if not spec.known_from:
        return {}
    id_index = list(header).index(spec.identifier.name)
    wanted: set[str] = set()
    records = _rows(path)
    next(records)
    for record in records:
        if len(record) > id_index:
            digits = normalise(record[id_index])
            if digits is not None:
                wanted.add(digits)
    known: dict[str, list[tuple[Pii, str]]] = {}
    for name in spec.known_from:
        ref_spec = load_spec(name)
        ref_path = references.get(name, home.sources / f"{name}.csv")
        if not ref_path.is_file():
            # Fail closed: without it, the patient's name would stay in the free text.
            raise InputError(
                f"dataset {spec.name} clears its free text of identifiers held in {name}; "
                f"its file is not at {ref_path}"
            )
        ref_header = _checked_header(ref_spec, ref_path)
        ref_records = _rows(ref_path)
        next(ref_records)  # the header, checked above
        ref_id = ref_header.index(ref_spec.identifier.name)
        columns = [
            (ref_header.index(c.name), c.known_kind)
            for c in ref_spec.known_columns
            if c.known_kind is not None
        ]
        for number, record in enumerate(ref_records, start=1):
            if len(record) != len(ref_header):
                # Fail closed: whose identifiers this row holds cannot be read, so they
                # could not be cleared from that patient's free text.
                raise InputError(
                    f"{ref_path.name}: data row {number} has {len(record)} fields, not "
                    f"{len(ref_header)}; dataset {spec.name} needs every row of {name} "
                    "to clear its free text"
                )
            digits = normalise(record[ref_id])
            if digits is None or digits not in wanted:
                continue
            values = known.setdefault(digits, [])
            values.extend((kind, record[i]) for i, kind in columns if record[i].strip())
    return known


def deidentify_kept_rows(
    spec: DatasetSpec,
    deidentifier: FreeTextDeidentifier,
    known_by_patient: Mapping[str, list[tuple[Pii, str]]],
    candidates: pa.RecordBatch,
    kept: pa.Array,
    digits: pa.Array,
    checked: BatchCheck,
    outputs: dict[str, pa.Array],
) -> dict[int, Rejection]:
    """De-identify the free text of the rows ``kept`` (indices into ``candidates``, the raw
    batch ``checked`` was made from; ``digits`` their normalised NHS numbers) row by row:
    only rows with free text reach the de-identifier. Fills ``outputs`` with the cleared
    text; returns the rows held back (the de-identifier failed: fail closed), by position
    among the kept rows. Both engines run it (on Spark, on the workers)."""
    known_columns = [(c.name, c.known_kind) for c in spec.known_columns if c.known_kind is not None]
    rows = candidates.select([name for name, _ in known_columns]).take(kept)
    known_values = {name: rows.column(name).to_pylist() for name, _ in known_columns}
    numbers = digits.to_pylist()
    texts = {name: array.take(kept).to_pylist() for name, array in checked.free_text.items()}
    cleared = {name: list(values) for name, values in texts.items()}
    held_back: dict[int, Rejection] = {}
    for column in spec.free_text_columns:
        out = column.output or column.name
        for position, text in enumerate(texts[out]):
            if text is None or position in held_back:
                continue
            known = [
                (kind, known_values[name][position])
                for name, kind in known_columns
                if known_values[name][position].strip()
            ]
            known.extend(known_by_patient.get(numbers[position], ()))
            try:
                cleared[out][position] = deidentifier.deidentify(text, known)
            except Exception:
                # Fail closed: the row is held back rather than written with raw text.
                held_back[position] = deidentification_failed(column.name)
    for out, values in cleared.items():
        outputs[out] = pa.array(values, pa.string())
    return held_back


def without_held_back(
    held_back: Mapping[int, Rejection],
    passed: np.ndarray,
    digits: pa.Array,
    outputs: dict[str, pa.Array],
) -> tuple[np.ndarray, pa.Array, dict[str, pa.Array]]:
    """The kept rows (their indices ``passed``, NHS numbers and output values) without
    those the de-identifier held back (positions among them)."""
    keep = np.ones(len(passed), dtype=bool)
    keep[list(held_back)] = False
    mask = pa.array(keep)
    return (
        passed[keep],
        digits.filter(mask),
        {name: array.filter(mask) for name, array in outputs.items()},
    )


def sign_in_checks(
    spec: DatasetSpec, key: bytes, rows: pa.RecordBatch, pids: pa.Array
) -> tuple[list[str], list[str]]:
    """The sign-in checks of written rows (``rows``: their raw columns; ``pids``: theirs):
    the pids that get one and the checks, in order. A row whose date of birth or postcode
    is missing or unreadable gets none (that patient cannot sign in to the page)."""
    columns = spec.sign_in
    assert columns is not None
    births = rows.column(columns.birth_date).to_pylist()
    postcodes = rows.column(columns.postcode).to_pylist()
    kept: list[str] = []
    checks: list[str] = []
    for pid, birth, postcode in zip(pids.to_pylist(), births, postcodes, strict=True):
        born = parse_date(birth)
        if born is None:
            continue
        check = sign_in_check(key, pid, born, postcode)
        if check is not None:
            kept.append(pid)
            checks.append(check)
    return kept, checks


def refused_records(
    header: Sequence[str],
    source_file: str,
    sha256: str,
    columns: pa.RecordBatch,
    rejected: Sequence[tuple[int, Rejection, int]],
    at: dt.datetime,
) -> list[dict[str, object]]:
    """The quarantine rows of refused rows: ``rejected`` holds (record number, why, row
    index into ``columns``, the batch's raw fields)."""
    if not rejected:
        return []
    rows = columns.take(pa.array([index for _, _, index in rejected], pa.int64()))
    values = [rows.column(i).to_pylist() for i in range(rows.num_columns)]
    return [
        quarantine_record(
            header, source_file, sha256, number, why, [column[i] for column in values], at
        )
        for i, (number, why, _) in enumerate(rejected)
    ]


def malformed_records(
    header: Sequence[str],
    source_file: str,
    sha256: str,
    records: Iterable[MalformedRecord],
    at: dt.datetime,
) -> list[dict[str, object]]:
    """The quarantine rows of malformed records (a number of fields not the header's)."""
    return [
        quarantine_record(
            header,
            source_file,
            sha256,
            record.number,
            malformed(len(header), len(record.fields)),
            list(record.fields),
            at,
        )
        for record in records
    ]


def quarantine_record(
    header: Sequence[str],
    source_file: str,
    sha256: str,
    number: int,
    rejection: Rejection,
    fields: Sequence[str],
    at: dt.datetime,
) -> dict[str, object]:
    """One row of the quarantine table: the record's number, why, and its raw fields (by
    column name when it has the header's width)."""
    raw: object = (
        dict(zip(header, fields, strict=True)) if len(fields) == len(header) else list(fields)
    )
    return {
        "source_file": source_file,
        "source_sha256": sha256,
        "row_number": number,
        "reason_code": rejection.code.value,
        "reason": rejection.reason,
        "raw_row": json.dumps(raw, ensure_ascii=False),
        "quarantined_at": at,
    }


# --- one run -----------------------------------------------------------------------------

_PID_CHARS = 32  # a pid is 128 bits as lower-case hex


def _fixed_rows(values: pa.Array, width: int) -> np.ndarray:
    """The characters of a string array whose values are all ``width`` bytes, as rows."""
    offsets = np.frombuffer(
        values.buffers()[1], dtype=np.int32, count=len(values) + 1, offset=values.offset * 4
    )
    if not bool(np.all(np.diff(offsets) == width)):  # pragma: no cover - pids are fixed width
        raise AssertionError("expected values of one width")
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    return data[int(offsets[0]) : int(offsets[-1])].reshape(len(values), width)


@dataclass
class _Run:
    spec: DatasetSpec
    header: list[str]
    source_file: str
    sha256: str
    pseudonymiser: LinkagePseudonymiser
    deidentifier: FreeTextDeidentifier | None
    known_by_patient: Mapping[str, list[tuple[Pii, str]]]
    batch_rows: int
    batch_pseudonymiser: ArrowLinkagePseudonymiser
    sign_in_key: bytes | None = None
    method: Method = "batch"
    rows_in: int = 0
    rows_written: int = 0
    quarantined: list[dict[str, object]] = field(default_factory=list)
    error: BaseException | None = None
    sign_in_pids: list[str] = field(default_factory=list)
    sign_in_checks: list[str] = field(default_factory=list)
    pid_index: NumberIndex = field(default_factory=NumberIndex)
    """The batch engine's NHS numbers met so far in the file -> their row in ``pid_rows``."""
    pid_rows: np.ndarray = field(default_factory=lambda: np.zeros((1024, _PID_CHARS), np.uint8))
    """The pids met so far, one row of hex characters each (the first ``pid_count``)."""
    pid_count: int = 0

    def batches(self, path: Path, bar: tqdm[Any]) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches(path, bar)
        except GeneratorExit:
            raise  # the writer stopped reading; its own error is the one to report
        except BaseException as exc:
            self.error = exc
            raise

    def _batches(self, path: Path, bar: tqdm[Any]) -> Iterator[pa.RecordBatch]:
        if self.method == "rowwise":
            yield from self._rowwise_batches(path, bar)
        else:
            yield from self._arrow_batches(path, bar)
        if self.rows_in != self.rows_written + len(self.quarantined):
            # Checked here too so that a miscount aborts the commit, not only the manifest.
            raise RuntimeError(
                f"ingest of {self.source_file}: rows in ({self.rows_in}) is not rows written "
                f"({self.rows_written}) plus rows quarantined ({len(self.quarantined)})"
            )

    def _arrow_batches(self, path: Path, bar: tqdm[Any]) -> Iterator[pa.RecordBatch]:
        """The batch engine: Arrow batches through the stages of :mod:`sde.domain.batch_rules`
        (exactly the row-wise engine's results, in the same order): the stateless stage
        (:func:`prepare_batch`), then what needs the batches before (which rows are the
        first of their kind, pids met before), one batch at a time. The file is read by
        a thread of its own, two batches ahead (``read_ahead``)."""
        # Sized for the file (about 64 bytes a row or more) so that it rarely grows.
        rows = min(max(path.stat().st_size // 64, 1 << 16), 1 << 24)
        seen_rows = SeenTable(capacity=rows * 10 // 7)
        seen_keys = SeenTable(capacity=rows * 10 // 7 if self.spec.key else 1 << 16)
        raw_batches = read_ahead(
            read_raw_batches(path, self.header, batch_records=self.batch_rows, on_bytes=bar.update)
        )
        try:
            for raw in raw_batches:
                self.rows_in += raw.records
                prepared = prepare_batch(self.spec, raw.columns)
                out = self._arrow_batch(raw, prepared, seen_rows, seen_keys)
                if out.num_rows:
                    yield out
        finally:
            raw_batches.close()  # stops the reading thread, whatever ended the loop

    def _arrow_batch(
        self,
        raw: RawBatch,
        prepared: PreparedBatch,
        seen_rows: SeenTable,
        seen_keys: SeenTable,
    ) -> pa.RecordBatch:
        spec = self.spec
        rejected: list[tuple[int, Rejection, int]] = []  # (record number, why, row index)
        columns = raw.columns
        numbers = raw.numbers.to_numpy()
        checked = prepared.checked
        # Exact copies among well-formed rows come first, before any rule.
        earlier = first_seen(prepared.row_digests, numbers, seen_rows)
        fresh = earlier == numbers
        copies = np.flatnonzero(~fresh)
        rejected.extend((int(numbers[i]), duplicate_row(int(earlier[i])), int(i)) for i in copies)
        rejected.extend(
            (int(numbers[i]), why, i) for i, why in checked.rejections.items() if fresh[i]
        )
        accepted = np.flatnonzero(checked.passed)
        passed = accepted[fresh[accepted]]
        if spec.key and len(passed):
            keys = prepared.key_digests[fresh[accepted]]
            passed_numbers = numbers[passed]
            key_first = first_seen(keys, passed_numbers, seen_keys)
            repeats = key_first != passed_numbers
            rejected.extend(
                (int(passed_numbers[i]), duplicate_key(spec.key, int(key_first[i])), int(p))
                for i, p in enumerate(passed)
                if repeats[i]
            )
            passed = passed[~repeats]
        kept = pa.array(passed, pa.int64())
        digits = checked.nhs_numbers.take(kept)
        outputs = {name: array.take(kept) for name, array in checked.values.items()}
        if checked.free_text:
            assert self.deidentifier is not None
            held_back = deidentify_kept_rows(
                spec,
                self.deidentifier,
                self.known_by_patient,
                columns,
                kept,
                digits,
                checked,
                outputs,
            )
            if held_back:
                failed = {int(passed[i]): why for i, why in held_back.items()}
                rejected.extend((int(numbers[i]), why, i) for i, why in failed.items())
                passed, digits, outputs = without_held_back(held_back, passed, digits, outputs)
        self._quarantine_rows(rejected, raw)
        pids = self._pids(digits)
        if self.spec.sign_in is not None and len(passed):
            self._sign_in_checks(columns.take(pa.array(passed, pa.int64())), pids)
        self.rows_written += len(passed)
        schema = linked_schema(spec)
        arrays = [pids] + [outputs[name].cast(schema.field(name).type) for name, _ in spec.outputs]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _pids(self, digits: pa.Array) -> pa.Array:
        """The pid of each normalised NHS number (ten ASCII digits, never null), each
        distinct number MACed once per file (an events file repeats a patient's number
        in many batches): an index maps each number met (as an int) to its row of hex,
        looked up row by row (a sort of each batch's numbers cost more)."""
        count = len(digits)
        if count == 0:
            return pa.array([], pa.string())
        positions, new = self.pid_index.positions(pc.cast(digits, pa.int64()).to_numpy())
        if len(new):
            text = pc.utf8_lpad(pc.cast(pa.array(new), pa.string()), width=10, padding="0")
            made = self.batch_pseudonymiser.pid_array(text)
            assert made.null_count == 0  # valid numbers only reach here
            first, added = self.pid_count, len(new)
            if first + added > len(self.pid_rows):
                grown = np.zeros((max(2 * len(self.pid_rows), first + added), _PID_CHARS), np.uint8)
                grown[:first] = self.pid_rows[:first]
                self.pid_rows = grown
            self.pid_rows[first : first + added] = _fixed_rows(made, _PID_CHARS)
            self.pid_count += added
        # np.take of whole rows: numpy's fancy indexing of (n, 32) bytes is 5-10x slower.
        whole = np.dtype((np.void, _PID_CHARS))
        gathered = np.take(self.pid_rows.view(whole), positions)
        offsets = np.arange(0, (count + 1) * _PID_CHARS, _PID_CHARS, dtype=np.int32)
        return pa.Array.from_buffers(
            pa.string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(gathered)]
        )

    def _quarantine_rows(self, rejected: list[tuple[int, Rejection, int]], raw: RawBatch) -> None:
        """Quarantine the batch's refused rows and its malformed records, in file order."""
        at = dt.datetime.now(dt.UTC)
        where = (self.header, self.source_file, self.sha256)
        records = malformed_records(*where, raw.malformed, at)
        records += refused_records(*where, raw.columns, rejected, at)
        self.quarantined.extend(sorted(records, key=lambda record: int(str(record["row_number"]))))

    def _sign_in_checks(self, rows: pa.RecordBatch, pids: pa.Array) -> None:
        assert self.spec.sign_in is not None
        assert self.sign_in_key is not None
        kept, checks = sign_in_checks(self.spec, self.sign_in_key, rows, pids)
        self.sign_in_pids.extend(kept)
        self.sign_in_checks.extend(checks)

    def _rowwise_batches(self, path: Path, bar: tqdm[Any]) -> Iterator[pa.RecordBatch]:
        """The row-wise engine (Python's ``csv`` and ``check_row``, one row at a time): the
        reference the batch engine is tested against, and a baseline of the benchmark."""
        spec = self.spec
        width = len(self.header)
        duplicates = DuplicateFinder(spec.key)
        known_columns = [
            (c.name, c.known_kind) for c in spec.known_columns if c.known_kind is not None
        ]
        pending: list[tuple[int, dict[str, str], CheckedRow]] = []
        records = _rows(path, bar)
        next(records)  # the header, already checked
        for fields in records:
            self.rows_in += 1
            number = self.rows_in
            if not fields and width == 1:
                fields = [""]  # a single-column file writes an empty value as a blank line
            if len(fields) != width:
                self._quarantine(number, malformed(width, len(fields)), fields)
                continue
            copy = duplicates.exact_copy(fields, number)
            if copy is not None:
                self._quarantine(number, copy, fields)
                continue
            row = dict(zip(self.header, fields, strict=True))
            checked = check_row(spec, row)
            if isinstance(checked, Rejection):
                self._quarantine(number, checked, fields)
                continue
            repeated = duplicates.repeated_key(checked.key, number)
            if repeated is not None:
                self._quarantine(number, repeated, fields)
                continue
            pending.append((number, row, checked))
            if len(pending) >= self.batch_rows:
                yield self._batch(pending, known_columns)
                pending = []
        if pending:
            yield self._batch(pending, known_columns)

    def _batch(
        self,
        pending: list[tuple[int, dict[str, str], CheckedRow]],
        known_columns: list[tuple[str, Pii]],
    ) -> pa.RecordBatch:
        spec = self.spec
        outputs = spec.outputs
        columns: dict[str, list[object]] = {name: [] for name, _ in outputs}
        pids = self.pseudonymiser.pids({checked.nhs_number for _, _, checked in pending})
        pid_column: list[str] = []
        for number, row, checked in pending:
            values = checked.values
            if checked.free_text:
                cleared = self._deidentify(row, checked, known_columns)
                if isinstance(cleared, Rejection):
                    self._quarantine(number, cleared, [row[h] for h in self.header])
                    continue
                values = {**values, **cleared}
            pid_column.append(pids[checked.nhs_number])
            self._sign_in_check(row, pids[checked.nhs_number])
            for name, _ in outputs:
                columns[name].append(values[name])
        self.rows_written += len(pid_column)
        schema = linked_schema(spec)
        arrays = [pa.array(pid_column, type=pa.string())] + [
            pa.array(columns[name], type=schema.field(name).type) for name, _ in outputs
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _sign_in_check(self, row: Mapping[str, str], pid: str) -> None:
        """Keep the keyed check of the full date of birth and postcode (a patient with
        either missing or unreadable cannot sign in to the page; the letter still works)."""
        columns = self.spec.sign_in
        if columns is None or self.sign_in_key is None:
            return
        born = parse_date(row[columns.birth_date])
        if born is None:
            return
        check = sign_in_check(self.sign_in_key, pid, born, row[columns.postcode])
        if check is not None:
            self.sign_in_pids.append(pid)
            self.sign_in_checks.append(check)

    def _deidentify(
        self, row: Mapping[str, str], checked: CheckedRow, known_columns: list[tuple[str, Pii]]
    ) -> dict[str, str] | Rejection:
        assert self.deidentifier is not None
        known = [(kind, row[name]) for name, kind in known_columns if row[name].strip()]
        known.extend(self.known_by_patient.get(checked.nhs_number, ()))
        cleared: dict[str, str] = {}
        for column in self.spec.free_text_columns:
            out = column.output or column.name
            if out not in checked.free_text:
                continue
            try:
                cleared[out] = self.deidentifier.deidentify(checked.free_text[out], known)
            except Exception:
                # Fail closed: the row is held back rather than written with raw text.
                return deidentification_failed(column.name)
        return cleared

    def _quarantine(self, number: int, rejection: Rejection, fields: Sequence[str]) -> None:
        self.quarantined.append(
            quarantine_record(
                self.header,
                self.source_file,
                self.sha256,
                number,
                rejection,
                fields,
                dt.datetime.now(dt.UTC),
            )
        )
