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

Local lake only: a lake on object storage is refused (see docs/spark.md).
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
from deltalake import write_deltalake

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.adapters.arrow_hmac import ArrowProjectPseudonymiser
from sde.errors import ConfigError, InputError, SdeError
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
from sde.services.home import CONFIG_FILE, Home
from sde.services.optouts import Exclusions, load_opt_outs
from sde.services.ports import AuditSink

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPARK_ENGINE: Final = "spark"
SETTINGS_KEY: Final = "spark"
DEFAULT_CORES: Final = 2
DEFAULT_MEMORY: Final = "2g"
CHECKOUT_JARS: Final = Path(__file__).resolve().parents[2] / ".build" / "spark-jars"
"""Where ``scripts/setup_spark.sh`` puts Delta's jars in a checkout of sde."""

_SETTINGS: Final = ("cores", "memory", "jars_dir")
_MEMORY: Final = re.compile(r"[1-9][0-9]{0,6}[kmgt]", re.IGNORECASE)
# PySpark 4.2 warns on pandas 3 each time a Python function is planned; sde's Spark path
# is Arrow only (see sde.adapters.spark).
_PANDAS_WARNING: Final = "PySpark does not yet fully support pandas"
# The exception type a Python worker raised: the first "<Type>: " line of its traceback.
_PYTHON_TRACEBACK: Final = "Traceback (most recent call last):"
_WORKER_ERROR: Final = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]{0,100}(?:Error|Exception)): ", re.M)


# --- settings ------------------------------------------------------------------------------


def _check_memory(value: object) -> str:
    text = str(value).strip()
    if isinstance(value, bool) or not _MEMORY.fullmatch(text):
        raise ConfigError(
            "Spark's memory must be a whole number with a unit k, m, g or t (e.g. 2g, 512m)"
        )
    return text.lower()


def _check_cores(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError("Spark's cores must be a positive whole number")
    return value


@dataclass(frozen=True)
class SparkSettings:
    """How ``--engine spark`` starts Spark: the ``spark:`` section of ``config.yaml``.

    ``cores`` (``local[cores]``), ``memory`` (the driver's, which in local mode is the
    whole session's) and ``jars_dir`` (Delta's jars; relative to the home; default: the
    checkout's ``.build/spark-jars`` when it exists)."""

    cores: int = DEFAULT_CORES
    memory: str = DEFAULT_MEMORY
    jars_dir: Path | None = None

    @classmethod
    def from_mapping(cls, data: object, *, root: Path) -> SparkSettings:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"the {SETTINGS_KEY}: section of {CONFIG_FILE} must be a mapping")
        unknown = sorted(str(key) for key in data if key not in _SETTINGS)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) in the {SETTINGS_KEY}: section of {CONFIG_FILE}: "
                f"{', '.join(unknown)} (known: {', '.join(_SETTINGS)})"
            )
        jars_dir: Path | None = None
        raw_jars = data.get("jars_dir")
        if raw_jars is not None:
            if not isinstance(raw_jars, str) or not raw_jars.strip():
                raise ConfigError(f"{SETTINGS_KEY}.jars_dir in {CONFIG_FILE} must be a folder")
            jars_dir = Path(raw_jars).expanduser()
            if not jars_dir.is_absolute():
                jars_dir = root / jars_dir
        return cls(
            cores=_check_cores(data.get("cores", DEFAULT_CORES)),
            memory=_check_memory(data.get("memory", DEFAULT_MEMORY)),
            jars_dir=jars_dir,
        )

    def with_overrides(
        self, *, cores: int | None = None, memory: str | None = None
    ) -> SparkSettings:
        """These settings with the command line's ``--spark-cores`` / ``--spark-memory``."""
        return replace(
            self,
            cores=self.cores if cores is None else _check_cores(cores),
            memory=self.memory if memory is None else _check_memory(memory),
        )

    def jars(self) -> Path:
        """The folder of Delta's jars: ``jars_dir``, else the checkout's
        ``.build/spark-jars`` if it exists, else a :class:`ConfigError` saying how to get
        them. (:func:`sde.adapters.spark.delta_jars` checks the folder's contents.)"""
        if self.jars_dir is not None:
            return self.jars_dir
        if CHECKOUT_JARS.is_dir():
            return CHECKOUT_JARS
        raise ConfigError(
            f"no folder of Delta's jars for Spark: set {SETTINGS_KEY}: jars_dir: in "
            f"{CONFIG_FILE} to a folder holding them, or in sde's checkout {sp.SETUP_HINT}, "
            "which fetches them into .build/spark-jars"
        )


def spark_settings(home: Home) -> SparkSettings:
    """The home's Spark settings (``spark:`` in ``config.yaml``; defaults without it)."""
    return SparkSettings.from_mapping(home.settings.extra.get(SETTINGS_KEY), root=home.root)


@contextmanager
def spark_engine(
    settings: SparkSettings, *, app_name: str = "sde-extract"
) -> Iterator[SparkSession]:
    """A local Spark session for one command, stopped (its JVM too) when the block ends,
    whether it ends well or not."""
    session = sp.spark_session(
        cores=settings.cores,
        jars_dir=settings.jars(),
        memory=settings.memory,
        app_name=app_name,
    )
    try:
        yield session
    finally:
        sp.stop(session)


# --- errors --------------------------------------------------------------------------------


class SparkStageFailed(SdeError):
    """A Spark stage of an extract failed. The message names the stage, the project, the
    table and Spark's error class; Spark's own message (which can quote data) is dropped."""

    def __init__(self, stage: str, project_id: str, dataset: str, condition: str) -> None:
        self.stage = stage
        self.project_id = project_id
        self.dataset = dataset
        self.condition = condition
        kind = f" ({condition})" if condition else ""
        super().__init__(
            f"Spark failed while {stage}, extract of project {project_id}, table {dataset}"
            f"{kind}; Spark's message is not shown because it can quote patient data. "
            "No rows of this table were committed; the extract's manifest was not updated"
        )


def _error_class(error: BaseException) -> str:
    """Spark's error class, or the type a Python worker raised: identifiers only."""
    # The adapter's parser of Spark errors (the bracketed class only, never the text).
    condition = sp.error_condition(error)
    # A Python worker's traceback, inside Spark's error (the JVM wraps it in its own).
    _, traceback_found, traceback = str(error).partition(_PYTHON_TRACEBACK)
    worker = _WORKER_ERROR.search(traceback) if traceback_found else None
    if worker:
        raised = f"a Python worker raised {worker.group(1)}"
        return f"{condition}: {raised}" if condition else raised
    return condition or type(error).__name__


@contextmanager
def _stage(stage: str, project_id: str, dataset: str) -> Iterator[None]:
    try:
        yield
    except SdeError:
        raise
    except Exception as error:
        raise SparkStageFailed(stage, project_id, dataset, _error_class(error)) from None


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
    if home.lake_is_remote:
        raise InputError(
            "the Spark engine reads and writes a lake on local disk only for now; "
            "build this extract with --engine local"
        )
    opt_outs = load_opt_outs(home)
    pseudonymiser = ArrowProjectPseudonymiser(home.master_key(), request.project_id)
    out_dir, manifest = start_manifest(home, request, actor, opt_outs.versions)
    if not isinstance(out_dir, Path):  # pragma: no cover - refused above
        raise InputError("the Spark engine writes extracts on local disk only")
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
    out_dir: Path,
) -> TableManifest:
    from pyspark.sql import functions as spark_functions

    source, pinned = open_source(home, dataset, columns)
    # Counted by delta-rs from the Parquet footers of the pinned version (no Spark job):
    # Spark's rows written plus removed must add up to it (checked below).
    rows_in = pinned.count_rows()
    stage = functools.partial(_stage, project_id=project_id, dataset=dataset)
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
    _create_table(target, source.schema)
    transform = functools.partial(
        project_pseudonym_batches, pseudonymiser=pseudonymiser, schema=source.schema
    )
    with stage("pseudonymising and writing the extract table"):
        version = sp.write_delta(_map_arrow(kept, transform, source.schema), target, "overwrite")
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


def _map_arrow(frame: DataFrame, transform: Any, schema: pa.Schema) -> DataFrame:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        return sp.map_arrow(frame, transform, schema)


def _create_table(target: Path, schema: pa.Schema) -> None:
    """Make ``target`` a Delta table of exactly ``schema`` (nullability included), with
    delta-rs, unless it is one already: Spark then only overwrites its rows, keeping the
    schema (a table Spark creates has every column nullable, ``patient_id`` too)."""
    current = delta.version(target)
    if current is not None and delta.dataset(target, current).schema.equals(schema):
        return
    write_deltalake(
        str(target),
        schema.empty_table(),
        mode="overwrite",
        schema_mode="overwrite" if current is not None else None,
    )
