"""Apache Spark with Delta (``pyspark`` + ``delta-spark``): a local session, Delta read and
write, and Arrow batch transforms on Spark's Python workers.

This is what the ``spark`` engine of ingest and extract stands on: the same Arrow batch
functions the local engine calls run on Spark through :func:`map_arrow`
(``DataFrame.mapInArrow``), and the tables it writes are the same Delta tables delta-rs
(:mod:`sde.adapters.delta`) writes and reads.

:func:`spark_session` starts Spark in local mode (``local[cores]``) and never reaches the
network:

- Delta's jars come from a folder (``jars_dir``: ``.build/spark-jars``, fetched once and
  checked by ``scripts/setup_spark.sh``), never from Ivy/Maven at session start;
- the driver binds to and advertises 127.0.0.1 only, and the web UI is off;
- Python workers run the interpreter that runs sde (``sys.executable``, the venv), so they
  import ``sde`` and the transform functions exactly as the driver does.

Spark's own log (log4j2, WARN and above) goes to a file in the session's scratch folder
(:func:`log_file`), not to stderr; the JVM still prints one line of its own at start
(``Using incubator modules``). PySpark's own Python loggers that repeat a failed query's
message on stderr (it can quote a value) are switched off. A missing ``pyspark``, missing
jars, or a JVM that does not start is a :class:`~sde.errors.ConfigError` naming what is
missing, shown without a trace.

Locations are :data:`sde.adapters.delta.Location`: a local folder, or a
:class:`~sde.adapters.delta.RemoteTable` on S3 (``s3://`` / ``s3a://``), which Spark
reaches through Hadoop's S3A connector (``hadoop-aws`` and the AWS SDK v2 modules, fetched
by ``scripts/setup_spark.sh`` into the same folder). :func:`use_lake` gives the session
the S3A settings of the table's bucket (endpoint, path style, TLS, region, credentials),
from the table's storage options, in the session's Hadoop configuration only (never in
Spark's own configuration, a command line or a message), and checks that the store
answers. Tables on Azure or GCS are refused on Spark (their Hadoop connectors are not set
up). See docs/spark.md.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import pyarrow as pa

from sde.adapters.delta import Location, RemoteTable, flag, s3_endpoint
from sde.adapters.delta import version as delta_log_version
from sde.errors import ConfigError, InputError, StateError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

ArrowBatchFunction = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
WriteMode = Literal["append", "overwrite", "error", "ignore"]

# Jars that must be in ``jars_dir`` (by file-name prefix); the rest of the folder (Delta
# kernel, Unity Catalog client) is put on the classpath as well.
REQUIRED_JARS: Final = ("delta-spark_", "delta-storage-")
S3A_JARS: Final = ("hadoop-aws-", "s3-2", "sdk-core-")
"""Jars (by file-name prefix) that a lake on S3 needs in ``jars_dir`` (S3A and the SDK)."""
SETUP_HINT: Final = "run `SDE_SETUP_SPARK=1 bash scripts/setup.sh` (or scripts/setup_spark.sh)"
DELTA_EXTENSION: Final = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG: Final = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
LOG_FILE_CONF: Final = "spark.sde.logFile"
SCRATCH_CONF: Final = "spark.sde.scratch"
LOOPBACK: Final = "127.0.0.1"
# PySpark 4.2 warns on pandas 3 (it is tested on pandas 2); sde's Spark path is Arrow only.
_PANDAS_WARNING: Final = "PySpark does not yet fully support pandas"

_LOG4J2: Final = """\
# Written by sde.adapters.spark: Spark's log to a file, WARN and above, nothing on stderr.
status = error
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
# Noisy at WARN and harmless in local mode.
logger.nativecode.name = org.apache.hadoop.util.NativeCodeLoader
logger.nativecode.level = error
"""


def _import_pyspark() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
            import pyspark.sql
    except ImportError:
        raise ConfigError(
            "Apache Spark is not installed in this environment: install sde with its "
            "`spark` extra (pyspark and delta-spark)"
        ) from None
    return pyspark.sql


def delta_jars(jars_dir: Path) -> list[Path]:
    """The jars to put on Spark's classpath: every ``*.jar`` in ``jars_dir``, which must
    hold delta-spark and delta-storage (a :class:`ConfigError` names what is missing)."""
    jars = sorted(jars_dir.glob("*.jar")) if jars_dir.is_dir() else []
    missing = [
        prefix.rstrip("_-")
        for prefix in REQUIRED_JARS
        if not any(jar.name.startswith(prefix) for jar in jars)
    ]
    if missing:
        raise ConfigError(
            f"Delta's jars for Spark are missing from {jars_dir} "
            f"(no {', '.join(name + '*.jar' for name in missing)}): {SETUP_HINT}"
        )
    return jars


def session_conf(
    *,
    cores: int,
    jars: Sequence[Path],
    scratch: Path,
    warehouse: Path,
    memory: str,
    app_name: str,
    quick_jit: bool = False,
) -> dict[str, str]:
    """The settings :func:`spark_session` starts Spark with (pure; shown in docs/spark.md)."""
    if cores < 1:
        raise InputError("a Spark session needs at least one core")
    log4j = scratch / "log4j2.properties"
    java_options = [
        f"-Dlog4j2.configurationFile=file:{log4j}",
        f"-Dderby.system.home={scratch}",
        "-Duser.timezone=UTC",
    ]
    if quick_jit:
        # With the quick compiler only, the JVM reserves 48 MB for compiled code (not
        # 240 MB): Spark with Delta and S3A fills it, and the JVM then stops compiling.
        java_options.append("-XX:ReservedCodeCacheSize=240m")
        java_options.append("-XX:TieredStopAtLevel=1")
    return {
        "spark.master": f"local[{cores}]",
        "spark.app.name": app_name,
        # Delta, from local jars only: no Ivy resolution, no network.
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.warehouse.dir": str(warehouse),
        # Loopback only, no web UI, no console progress bars.
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        # The driver is the only JVM in local mode: its memory is the session's.
        "spark.driver.memory": memory,
        "spark.driver.extraJavaOptions": " ".join(java_options),
        "spark.local.dir": str(scratch / "local"),
        # Workers run sde's own interpreter (the venv), so they import sde as the driver does.
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        # Arrow between the JVM and Python, and no silent fall-back to row-at-a-time pickling.
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        # Few partitions for a few cores: Spark's defaults (200 shuffle partitions, 50 for
        # Delta's log) are sized for clusters and cost seconds per query here.
        "spark.sql.shuffle.partitions": str(2 * cores),
        "spark.default.parallelism": str(2 * cores),
        "spark.databricks.delta.snapshotPartitions": str(cores),
        LOG_FILE_CONF: str(scratch / "spark.log"),
        SCRATCH_CONF: str(scratch),
    }


def spark_session(
    *,
    cores: int = 2,
    jars_dir: Path,
    warehouse: Path | None = None,
    memory: str = "2g",
    app_name: str = "sde",
    quick_jit: bool = False,
) -> SparkSession:
    """Start a local Spark session with Delta (see the module's docstring for what it
    guarantees). One session per process: stop it with :func:`stop` before starting
    another. ``warehouse`` is where ``saveAsTable`` would put managed tables (default: the
    session's scratch folder; sde addresses tables by path).

    ``quick_jit`` runs the JVM with its quick compiler only (``-XX:TieredStopAtLevel=1``):
    on 2 cores a fresh session reads its first tables and runs its first queries about
    twice as fast (the optimising compiler's threads no longer compete with the work), at
    some cost to long jobs. For short sessions on small data, such as the tests."""
    sql = _import_pyspark()
    jars = delta_jars(jars_dir)
    if sql.SparkSession.getActiveSession() is not None:
        raise StateError("a Spark session is already running in this process; stop it first")
    scratch = Path(tempfile.mkdtemp(prefix="sde-spark-"))
    conf = session_conf(
        cores=cores,
        jars=jars,
        scratch=scratch,
        warehouse=warehouse if warehouse is not None else scratch / "warehouse",
        memory=memory,
        app_name=app_name,
        quick_jit=quick_jit,
    )
    (scratch / "log4j2.properties").write_text(
        _LOG4J2.format(path=conf[LOG_FILE_CONF]), encoding="utf-8"
    )
    builder = sql.SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
            session: SparkSession = builder.getOrCreate()
    except Exception as error:
        shutil.rmtree(scratch, ignore_errors=True)
        if error_condition(error) != "JAVA_GATEWAY_EXITED":
            raise
        raise ConfigError(
            "the Spark JVM did not start (Spark 4.2 needs Java 17 or newer on PATH or in JAVA_HOME)"
        ) from None
    # PySpark takes the workers' interpreter from PYSPARK_PYTHON (default: `python3` on
    # PATH, which is not the venv) when the context starts; ``spark.pyspark.python`` only
    # counts under spark-submit. Point this session's Python functions at sde's own.
    session.sparkContext.pythonExec = sys.executable
    _silence_query_context_loggers()
    return session


# PySpark logs every SQL/DataFrame error that has a query context at ERROR, as JSON on
# stderr, through loggers of its own (``propagate = False``): the message quotes the value
# that failed (``CAST_INVALID_INPUT`` does), which may be a patient's. The exception is
# still raised; only this second copy is switched off.
QUERY_CONTEXT_LOGGERS: Final = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def _silence_query_context_loggers() -> None:
    from pyspark.logger import PySparkLogger

    for name in QUERY_CONTEXT_LOGGERS:
        # Made through PySparkLogger, as PySpark makes them (it logs with extra keywords a
        # plain logging.Logger refuses), then set above CRITICAL.
        logger = PySparkLogger.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)


def log_file(spark: SparkSession) -> Path:
    """Where this session's Spark (log4j) log goes."""
    return Path(spark.conf.get(LOG_FILE_CONF) or "")


def stop(spark: SparkSession) -> None:
    """Stop the session and its JVM, and remove its scratch folder (log included).

    ``SparkSession.stop()`` leaves PySpark's JVM running until Python exits; this ends it
    too, so a test run or a command does not keep a gigabyte of JVM around."""
    from pyspark import SparkContext

    scratch = spark.conf.get(SCRATCH_CONF)
    spark.stop()
    gateway = SparkContext._gateway
    if gateway is not None:
        process = getattr(gateway, "proc", None)
        gateway.shutdown()
        if process is not None:
            # The JVM exits when its stdin closes (PySpark's contract with its gateway).
            process.stdin.close()
            process.wait(timeout=60)
        SparkContext._gateway = None
        SparkContext._jvm = None
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)


# --- tables on object storage (S3, through Hadoop's S3A) ---------------------------------

S3_SCHEMES: Final = ("s3://", "s3a://")
_UNSUPPORTED_STORES: Final = {
    "az": "Azure (az://, abfs://, abfss://) needs Hadoop's ABFS connector (hadoop-azure)",
    "abfs": "Azure (az://, abfs://, abfss://) needs Hadoop's ABFS connector (hadoop-azure)",
    "abfss": "Azure (az://, abfs://, abfss://) needs Hadoop's ABFS connector (hadoop-azure)",
    "gs": "Google Cloud Storage (gs://) needs Google's GCS connector for Hadoop",
}
SIMPLE_CREDENTIALS: Final = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
TEMPORARY_CREDENTIALS: Final = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
DEFAULT_CREDENTIALS: Final = "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider"
"""The AWS SDK's default chain: environment, Java properties, web identity (STS),
profile, container and instance credentials."""


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0]


def _check_s3(location: RemoteTable) -> None:
    if location.uri.startswith(S3_SCHEMES):
        return
    scheme = _scheme(location.uri)
    missing = _UNSUPPORTED_STORES.get(scheme, f"{scheme}:// has no Hadoop connector set up")
    raise InputError(
        f"a lake on {scheme}:// is not supported on Spark: {missing}, which sde does not "
        "fetch or test (only S3 is, through S3A); use --engine local"
    )


def spark_uri(location: Location) -> str:
    """How Spark addresses ``location``: a local path, or ``s3a://bucket/key`` for a table
    on S3 (delta-rs keeps ``s3://``). Azure and GCS are an :class:`InputError`."""
    if isinstance(location, Path):
        return str(location)
    _check_s3(location)
    return "s3a://" + location.uri.split("://", 1)[1]


def _bucket(location: RemoteTable) -> str:
    return location.uri.split("://", 1)[1].split("/", 1)[0]


@dataclass(frozen=True)
class S3aSettings:
    """What Spark needs to reach one S3 bucket: Hadoop's S3A settings for that bucket only
    (``fs.s3a.bucket.<bucket>.*``, so another bucket's are untouched) and Java system
    properties (a web identity's role and token file, read by the AWS SDK's default
    chain). ``hadoop`` may hold credentials: never shown (not in ``repr``)."""

    bucket: str
    hadoop: Mapping[str, str] = field(repr=False)
    system_properties: Mapping[str, str] = field(default_factory=dict, repr=False)


def s3a_settings(location: RemoteTable) -> S3aSettings:
    """The S3A settings for ``location``'s bucket from its storage options (delta-rs's
    names), with the checks :mod:`sde.adapters.lake_files` makes for pyarrow: an endpoint
    must be an http(s) address, plain http only with ``AWS_ALLOW_HTTP``; path-style
    requests unless ``AWS_VIRTUAL_HOSTED_STYLE_REQUEST``; the access key and secret (and
    session token) if given, else the AWS SDK's default chain (environment, web identity
    from ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, instance or container
    credentials). Pure."""
    _check_s3(location)
    options = location.storage_options
    bucket = _bucket(location)
    prefix = f"fs.s3a.bucket.{bucket}."
    hadoop: dict[str, str] = {}
    parts = s3_endpoint(options)
    if parts is not None:
        hadoop["endpoint"] = parts.geturl().rstrip("/")
        hadoop["connection.ssl.enabled"] = "false" if parts.scheme == "http" else "true"
    else:
        hadoop["connection.ssl.enabled"] = "true"
    virtual = flag(options, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
    hadoop["path.style.access"] = "false" if virtual else "true"
    region = options.get("AWS_REGION") or options.get("AWS_DEFAULT_REGION")
    if region:
        hadoop["endpoint.region"] = region
    properties: dict[str, str] = {}
    if "AWS_ACCESS_KEY_ID" in options or "AWS_SECRET_ACCESS_KEY" in options:
        hadoop["access.key"] = options.get("AWS_ACCESS_KEY_ID", "")
        hadoop["secret.key"] = options.get("AWS_SECRET_ACCESS_KEY", "")
        if options.get("AWS_SESSION_TOKEN"):
            hadoop["session.token"] = options["AWS_SESSION_TOKEN"]
            hadoop["aws.credentials.provider"] = TEMPORARY_CREDENTIALS
        else:
            hadoop["aws.credentials.provider"] = SIMPLE_CREDENTIALS
    else:
        hadoop["aws.credentials.provider"] = DEFAULT_CREDENTIALS
        if options.get("AWS_ROLE_ARN") and options.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
            properties["aws.roleArn"] = options["AWS_ROLE_ARN"]
            properties["aws.webIdentityTokenFile"] = options["AWS_WEB_IDENTITY_TOKEN_FILE"]
            properties["aws.roleSessionName"] = options.get("AWS_ROLE_SESSION_NAME", "sde")
    return S3aSettings(
        bucket=bucket,
        hadoop={prefix + key: value for key, value in hadoop.items()},
        system_properties=properties,
    )


def _check_s3a_jars(spark: SparkSession) -> None:
    names = [Path(jar).name for jar in (spark.conf.get("spark.jars", "") or "").split(",") if jar]
    missing = [p.rstrip("-") for p in S3A_JARS if not any(n.startswith(p) for n in names)]
    if missing:
        raise ConfigError(
            "this Spark session lacks Hadoop's S3A connector for a lake on S3 "
            f"(no {', '.join(name + '*.jar' for name in missing)} in its jars): {SETUP_HINT}"
        )


def _configure(spark: SparkSession, location: RemoteTable) -> None:
    """Give the session ``location``'s bucket settings (idempotent). A bucket the session
    already reaches with other settings is refused: Hadoop caches one client per bucket,
    so new settings would not take effect."""
    settings = s3a_settings(location)
    _check_s3a_jars(spark)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    # Settings of the bucket left over from an earlier lake are compared too.
    ours = set(settings.hadoop)
    prefix = f"fs.s3a.bucket.{settings.bucket}."
    present = {str(k) for k in conf.getPropsWithPrefix(prefix).keySet()}
    others = {prefix + name for name in present} - ours
    differs = others or any(
        conf.get(key) is not None and conf.get(key) != value
        for key, value in settings.hadoop.items()
    )
    if differs:
        raise StateError(
            f"this Spark session already reaches the bucket {settings.bucket} with other "
            "S3 settings; start a new Spark session for this lake"
        )
    for key, value in settings.hadoop.items():
        conf.set(key, value)
    for key, value in settings.system_properties.items():
        jvm.java.lang.System.setProperty(key, value)


def use_lake(spark: SparkSession, lake: Location) -> None:
    """Make the session able to read and write ``lake`` (a local folder: nothing to do;
    S3: :func:`s3a_settings` in the session's Hadoop configuration), then check that the
    store answers: wrong credentials or an unreachable store fail here, before any Spark
    job, with one line naming the lake (:func:`sde.adapters.lake_files.unavailable`; the
    store's message is never repeated). Azure and GCS are an :class:`InputError`."""
    if isinstance(lake, Path):
        return
    _configure(spark, lake)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    # The check uses a client of its own that gives up quickly (S3A's defaults retry an
    # unreachable endpoint for about two minutes), closed after; jobs keep the defaults.
    conf = spark._jsparkSession.sessionState().newHadoopConf()
    conf.set("fs.s3a.impl.disable.cache", "true")
    prefix = f"fs.s3a.bucket.{_bucket(lake)}."
    for key, value in _PROBE_SETTINGS.items():
        conf.set(prefix + key, value)
    try:
        path = jvm.org.apache.hadoop.fs.Path(spark_uri(lake))
        fs = path.getFileSystem(conf)
        try:
            fs.exists(path)
        finally:
            fs.close()
    except Exception as error:  # a Py4JJavaError; its text is looked at, never shown
        from sde.adapters.lake_files import unavailable

        raise unavailable(lake, error) from None


_PROBE_SETTINGS: Final = {
    "retry.limit": "1",
    "attempts.maximum": "1",
    "connection.establish.timeout": "5s",
    "connection.timeout": "15s",
}


def _location(spark: SparkSession, location: Location) -> str:
    if isinstance(location, RemoteTable):
        _configure(spark, location)
    return spark_uri(location)


def write_delta(
    df: DataFrame,
    location: Location,
    mode: WriteMode = "append",
    *,
    properties: dict[str, str] | None = None,
    user_metadata: str | None = None,
) -> int:
    """Write ``df`` to the Delta table at ``location`` as one commit and return the
    table's new version. ``properties`` (e.g. ``sde.adapters.delta.APPEND_ONLY``) are set
    when the write creates the table (and ignored otherwise). ``user_metadata`` is stored
    with the commit as Delta's ``userMetadata`` (one string: delta-rs's ``custom_metadata``
    keys are not something Spark's writer can set), e.g. the source file's SHA-256.

    Spark writes every column as nullable when it creates a table: create sde's tables
    with delta-rs (``sde.adapters.delta.append``) to keep ``pid`` NOT NULL; Spark's appends
    then respect it."""
    spark = df.sparkSession
    path = _location(spark, location)
    if isinstance(location, Path):
        location.parent.mkdir(parents=True, exist_ok=True)
    creating = not _is_delta(spark, path)
    writer = df.write.format("delta").mode(mode)
    if creating:
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
    if user_metadata is not None:
        writer = writer.option("userMetadata", user_metadata)
    try:
        writer.save(path)
    except Exception as error:
        _raise_refusal(error, location.name, mode)
        raise
    written = delta_log_version(location)  # delta-rs reads the log: no Spark job
    assert written is not None
    return written


_CONDITION: Final = re.compile(r"\[([A-Z][A-Z0-9_]{2,120})(?:\.[A-Z0-9_]+)?\]")
_NOT_NULL_COLUMN: Final = re.compile(r"NOT NULL constraint violated for column: ([\w.]{1,128})")


def error_condition(error: BaseException) -> str:
    """Spark's error class (``DELTA_...``) of an exception from the JVM, or ''."""
    get = getattr(error, "getCondition", None)
    if callable(get):
        found = get()
        if found:
            return str(found)
    # A Py4JJavaError: "An error occurred while calling ...\n: <class>: [CONDITION] ..."
    head = "\n".join(str(error).splitlines()[:3])
    match = _CONDITION.search(head)
    return match.group(1) if match else ""


def _raise_refusal(error: BaseException, table: str, mode: str) -> None:
    """Delta's refusals as sde errors naming the table, the rule and the column only (a
    JVM message can quote data, so it is never passed on); anything else is left alone."""
    condition = error_condition(error)
    if condition == "DELTA_CANNOT_MODIFY_APPEND_ONLY":
        raise StateError(
            f"the Delta table {table} is append-only: Spark's {mode} write was refused"
        ) from None
    if condition == "DELTA_NOT_NULL_CONSTRAINT_VIOLATED":
        found = _NOT_NULL_COLUMN.search(str(error))
        column = found.group(1).rstrip(".") if found else "a NOT NULL column"
        raise InputError(
            f"the Delta table {table} refused the write: column {column} may not be null"
        ) from None


def read_delta(spark: SparkSession, location: Location, version: int | None = None) -> DataFrame:
    """The Delta table at ``location`` (at ``version``; default: latest) as a DataFrame."""
    path = _location(spark, location)
    if not _is_delta(spark, path):
        raise InputError(f"there is no Delta table at {location}")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", int(version))
    return reader.load(path)


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def history(spark: SparkSession, location: Location) -> list[dict[str, Any]]:
    """The table's commits, newest first: ``version``, ``timestamp``, ``operation``,
    ``operationParameters``, ``engineInfo`` (who wrote it: delta-rs or Spark) and
    ``userMetadata``."""
    from delta.tables import DeltaTable

    path = _location(spark, location)
    if not _is_delta(spark, path):
        return []
    frame = DeltaTable.forPath(spark, path).history()
    columns = [
        "version",
        "timestamp",
        "operation",
        "operationParameters",
        "engineInfo",
        "userMetadata",
    ]
    return [row.asDict() for row in frame.select(*columns).collect()]


def delta_version(spark: SparkSession, location: Location) -> int:
    """The table's current version."""
    entries = history(spark, location)
    if not entries:
        raise InputError(f"there is no Delta table at {location}")
    return int(max(entry["version"] for entry in entries))


def spark_schema(schema: pa.Schema | StructType | str) -> StructType | str:
    """A Spark schema from an Arrow schema (Spark's own mapping); others pass through."""
    if isinstance(schema, pa.Schema):
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(schema)
    return schema


def map_arrow(
    df: DataFrame,
    fn: ArrowBatchFunction,
    schema: pa.Schema | StructType | str,
) -> DataFrame:
    """Run ``fn`` over ``df``'s rows as Arrow record batches on Spark's Python workers
    (``mapInArrow``); its batches must have ``schema``.

    ``fn`` must be a module-level function (or a ``functools.partial`` of one): it is
    pickled by reference and imported by each worker, as the local engine calls it. A
    lambda or a nested function is refused, since pickling it would ship its whole
    closure (a key, a table) to every task."""
    _check_top_level(fn)
    with warnings.catch_warnings():  # PySpark 4.2 on pandas 3 warns at each plan
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
        return df.mapInArrow(fn, spark_schema(schema))


def _check_top_level(fn: Callable[..., Any]) -> None:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    qualname = getattr(target, "__qualname__", "")
    module = getattr(target, "__module__", None)
    if not callable(target) or not qualname or "<" in qualname or module in (None, "__main__"):
        raise InputError(
            "map_arrow needs a module-level function (or a functools.partial of one), "
            f"importable by Spark's workers; got {qualname or type(target).__name__}"
        )
