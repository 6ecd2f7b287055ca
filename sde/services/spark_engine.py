"""What sde's Spark engines share: the ``spark:`` settings, a Spark session per command,
Spark's failures reported without their text, tables created with
delta-rs so that Spark keeps their schema.

Used by :mod:`sde.services.extract_spark` and :mod:`sde.services.ingest_spark`
(``--engine spark``). See docs/spark.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pyarrow as pa
from deltalake import write_deltalake

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.errors import ConfigError, SdeError
from sde.services.home import CONFIG_FILE, Home

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_ENGINE: Final = "spark"
SETTINGS_KEY: Final = "spark"
DEFAULT_CORES: Final = 2
DEFAULT_MEMORY: Final = "2g"
CHECKOUT_JARS: Final = Path(__file__).resolve().parents[2] / ".build" / "spark-jars"
"""Where ``scripts/setup_spark.sh`` puts Delta's jars in a checkout of sde."""

_SETTINGS: Final = ("cores", "memory", "jars_dir")
_MEMORY: Final = re.compile(r"[1-9][0-9]{0,6}[kmgt]", re.IGNORECASE)
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
    """A Spark stage failed. The message names the stage, what was being done (an extract's
    project and table, an ingest's file and dataset), Spark's error class and what was not
    committed; Spark's own message (which can quote data) is dropped."""

    def __init__(self, stage: str, subject: str, condition: str, consequence: str) -> None:
        self.stage = stage
        self.subject = subject
        self.condition = condition
        kind = f" ({condition})" if condition else ""
        super().__init__(
            f"Spark failed while {stage}, {subject}{kind}; Spark's message is not shown "
            f"because it can quote patient data. {consequence}"
        )


def error_class(error: BaseException) -> str:
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
def spark_stage(stage: str, subject: str, consequence: str) -> Iterator[None]:
    """Run a Spark stage: sde's own errors pass through; any other failure becomes a
    :class:`SparkStageFailed` (``from None``: Spark's message stays out of the chain)."""
    try:
        yield
    except SdeError:
        raise
    except Exception as error:
        raise SparkStageFailed(stage, subject, error_class(error), consequence) from None


def create_table(target: delta.Location, schema: pa.Schema) -> None:
    """Make ``target`` a Delta table of exactly ``schema`` (nullability included), with
    delta-rs, unless it is one already: Spark then only writes rows, keeping the schema (a
    table Spark creates has every column nullable). ``target`` may be on object storage."""
    current = delta.version(target)
    if current is not None and delta.dataset(target, current).schema.equals(schema):
        return
    if isinstance(target, Path):
        target.parent.mkdir(parents=True, exist_ok=True)
    write_deltalake(
        str(target),
        schema.empty_table(),
        mode="overwrite",
        schema_mode="overwrite" if current is not None else None,
        storage_options=(
            dict(target.storage_options) if isinstance(target, delta.RemoteTable) else None
        ),
    )
