"""Apache Spark (local mode) with delta-spark against delta-rs (sde.adapters.delta) on the
same Delta tables: each engine reads what the other wrote, versions and history agree,
delta-rs's append-only tables stay append-only under Spark, and an Arrow batch transform
gives the same pseudonyms on Spark's Python workers as in the local process.

One Spark session serves the whole module (tests/spark_session.py)."""

from __future__ import annotations

import datetime as dt
import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import deltalake
import pyarrow as pa
import pytest

import sde
from bench.pseudonymise import nhs_numbers
from sde.adapters import delta
from sde.adapters import spark as spark_adapter
from sde.adapters.arrow_hmac import ArrowLinkagePseudonymiser
from sde.adapters.delta import APPEND_ONLY, RemoteTable
from sde.errors import ConfigError, InputError, StateError
from tests.spark_session import JARS_DIR, spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.delta]

MASTER_KEY = bytes(range(32))
UTC = dt.UTC

# The linked zone's column types (sde.services.ingest: string, date, float, integer, year,
# and the UTC timestamps of its bookkeeping tables), with nulls where a column may have them.
LINKED_SCHEMA = pa.schema(
    [
        pa.field("pid", pa.string(), nullable=False),
        pa.field("event_date", pa.date32()),
        pa.field("birth_year", pa.int32()),
        pa.field("value", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("code", pa.string()),
        pa.field("loaded_at", pa.timestamp("us", tz="UTC")),
    ]
)


def linked_rows(first: int, rows: int) -> pa.Table:
    numbers = range(first, first + rows)
    return pa.table(
        {
            "pid": [f"{n:032x}" for n in numbers],
            "event_date": [None if n % 5 == 0 else dt.date(2020, 1, 1 + n % 28) for n in numbers],
            "birth_year": [None if n % 7 == 0 else 1930 + n % 80 for n in numbers],
            "value": [None if n % 3 == 0 else n / 8 for n in numbers],
            "count": [None if n % 4 == 0 else n * 1_000_003 for n in numbers],
            "code": [None if n % 6 == 0 else f"C{n % 11}" for n in numbers],
            "loaded_at": [dt.datetime(2026, 3, 1, 12, n % 60, tzinfo=UTC) for n in numbers],
        },
        schema=LINKED_SCHEMA,
    )


def nullable(table: pa.Table) -> pa.Table:
    """``table`` with every field nullable (Spark writes every column nullable)."""
    return table.cast(pa.schema([field.with_nullable(True) for field in table.schema]))


def by_pid(table: pa.Table) -> pa.Table:
    return nullable(table).sort_by("pid")


# --- Spark writes, delta-rs reads ----------------------------------------------------------


def test_spark_writes_linked_zone_types_that_delta_rs_reads_back_equal(
    spark: SparkSession, tmp_path: Path
) -> None:
    table_path = tmp_path / "linked" / "gp_events"
    rows = linked_rows(0, 60)
    frame = spark.createDataFrame(rows)

    version = spark_adapter.write_delta(frame, table_path, properties=dict(APPEND_ONLY))

    assert version == 0
    assert by_pid(delta.read(table_path)).equals(by_pid(rows))
    assert delta.version(table_path) == 0
    # The property sde sets on its tables arrived as a table property delta-rs sees.
    written = deltalake.DeltaTable(str(table_path))
    assert written.metadata().configuration == APPEND_ONLY
    assert written.protocol().min_reader_version == 1
    # Spark makes every column nullable when it writes by path (pid included): a
    # difference from delta-rs, which keeps pid NOT NULL.
    assert all(field.nullable for field in delta.read(table_path).schema)


def test_spark_append_is_a_new_version_for_delta_rs_with_time_travel(
    spark: SparkSession, tmp_path: Path
) -> None:
    table_path = tmp_path / "t"
    first, second = linked_rows(0, 10), linked_rows(10, 15)
    spark_adapter.write_delta(spark.createDataFrame(first), table_path)
    assert spark_adapter.write_delta(spark.createDataFrame(second), table_path) == 1

    assert delta.version(table_path) == 1
    assert by_pid(delta.read(table_path, version=0)).equals(by_pid(first))
    assert delta.read(table_path).num_rows == 25
    engines = [entry.get("engineInfo", "") for entry in delta.history(table_path)]
    assert len(engines) == 2
    assert all(engine.startswith("Apache-Spark/4.2") for engine in engines)
    # delta-rs appends sde's schema (pid NOT NULL) to the table Spark made nullable.
    assert delta.append(table_path, linked_rows(25, 5)) == 2
    assert spark_adapter.read_delta(spark, table_path).count() == 30
    assert spark_adapter.delta_version(spark, table_path) == 2


# --- delta-rs writes, Spark reads -----------------------------------------------------------


@pytest.fixture
def delta_rs_table(tmp_path: Path) -> Iterator[Path]:
    """An append-only table written by delta-rs the way ingest writes one: two commits,
    each with the source file's hash as commit metadata, pid NOT NULL."""
    table_path = tmp_path / "linked" / "admissions"
    assert delta.append(table_path, linked_rows(0, 20), custom_metadata={"source": "a"}) == 0
    assert delta.append(table_path, linked_rows(20, 5), custom_metadata={"source": "b"}) == 1
    yield table_path
    shutil.rmtree(table_path, ignore_errors=True)


def test_spark_reads_a_delta_rs_append_only_table_at_each_version(
    spark: SparkSession, delta_rs_table: Path
) -> None:
    protocol = deltalake.DeltaTable(str(delta_rs_table)).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)
    assert not protocol.writer_features  # nothing delta-spark could refuse

    latest = spark_adapter.read_delta(spark, delta_rs_table).toArrow()
    assert by_pid(latest).equals(by_pid(delta.read(delta_rs_table)))
    assert latest.schema.field("loaded_at").type == pa.timestamp("us", tz="UTC")
    first = spark_adapter.read_delta(spark, delta_rs_table, version=0).toArrow()
    assert by_pid(first).equals(by_pid(linked_rows(0, 20)))

    entries = spark_adapter.history(spark, delta_rs_table)
    assert [entry["version"] for entry in entries] == [1, 0]
    assert all(entry["engineInfo"].startswith("delta-rs") for entry in entries)
    assert {entry["operation"] for entry in entries} == {"WRITE"}
    assert spark_adapter.delta_version(spark, delta_rs_table) == 1


def test_spark_appends_to_a_delta_rs_table_and_delta_rs_sees_the_commit(
    spark: SparkSession, delta_rs_table: Path
) -> None:
    extra = linked_rows(100, 7)
    written = spark_adapter.write_delta(
        spark.createDataFrame(extra), delta_rs_table, user_metadata='{"source": "c"}'
    )
    assert written == 2

    assert delta.version(delta_rs_table) == 2
    assert delta.read(delta_rs_table).num_rows == 32
    assert by_pid(delta.read(delta_rs_table, version=1)).equals(
        by_pid(pa.concat_tables([linked_rows(0, 20), linked_rows(20, 5)]))
    )
    newest, *older = delta.history(delta_rs_table)
    assert newest["version"] == 2
    assert newest["engineInfo"].startswith("Apache-Spark")
    # Spark's commit metadata is one string (userMetadata); delta-rs's is keys of its own.
    assert newest["userMetadata"] == '{"source": "c"}'
    assert "source" not in newest
    assert [entry["source"] for entry in older] == ["b", "a"]
    seen_by_spark = spark_adapter.history(spark, delta_rs_table)
    assert [entry["userMetadata"] for entry in seen_by_spark] == ['{"source": "c"}', None, None]
    # delta-rs's NOT NULL pid survives Spark's append, and the table stays append-only.
    table = deltalake.DeltaTable(str(delta_rs_table))
    assert not table.schema().to_arrow().field("pid").nullable
    assert table.metadata().configuration == APPEND_ONLY


def test_a_delta_rs_append_only_table_refuses_overwrite_and_delete_on_spark(
    spark: SparkSession, delta_rs_table: Path
) -> None:
    from pyspark.errors import PySparkException

    before = delta.read(delta_rs_table)
    frame = spark.createDataFrame(linked_rows(500, 3))

    with pytest.raises(StateError, match="admissions is append-only: Spark's overwrite write"):
        spark_adapter.write_delta(frame, delta_rs_table, mode="overwrite")
    # Spark SQL straight on the table: Delta's own refusal.
    with pytest.raises(PySparkException, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        spark.sql(f"DELETE FROM delta.`{delta_rs_table}` WHERE birth_year > 1950")

    assert delta.version(delta_rs_table) == 1
    assert by_pid(delta.read(delta_rs_table)).equals(by_pid(before))


def test_spark_refuses_a_null_pid_in_a_delta_rs_table(
    spark: SparkSession, delta_rs_table: Path
) -> None:
    marker = "9434765919"  # a value that must not reach the message
    pids = pa.array([marker, None])
    bad = linked_rows(900, 2).set_column(0, pa.field("pid", pa.string()), pids)
    with pytest.raises(InputError) as refused:
        spark_adapter.write_delta(spark.createDataFrame(bad), delta_rs_table)
    assert str(refused.value) == (
        "the Delta table admissions refused the write: column pid may not be null"
    )
    assert refused.value.__cause__ is None
    assert delta.version(delta_rs_table) == 1


# --- Arrow batch transforms on Spark's workers --------------------------------------------


def pid_batches(
    master_key: bytes, column: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The ``pid`` of each row's NHS number (``column``), with the row's position."""
    pseudonymiser = ArrowLinkagePseudonymiser(master_key)
    for batch in batches:
        values = batch.column(column)
        if not pa.types.is_string(values.type):
            values = values.cast(pa.string())
        yield pa.record_batch(
            [batch.column("position"), pseudonymiser.pid_array(values)], ["position", "pid"]
        )


def worker_facts(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Which process, interpreter and sde package each task ran with."""
    for batch in batches:
        yield pa.record_batch(
            [
                pa.array([os.getpid()] * batch.num_rows, pa.int64()),
                pa.array([sys.executable] * batch.num_rows),
                pa.array([str(Path(sde.__file__).resolve())] * batch.num_rows),
            ],
            ["process", "python", "sde"],
        )


def test_map_arrow_gives_the_same_pids_on_spark_workers_as_locally(
    spark: SparkSession,
) -> None:
    numbers = nhs_numbers(300, seed=11)
    # Repeats, spelling variants, an invalid number and nulls: what ingest meets.
    values = pa.concat_arrays(
        [
            numbers,
            numbers.slice(0, 50),
            pa.array(["943 476 5919", "9434765918", None, "not a number", None]),
        ]
    )
    source = pa.table({"position": pa.array(range(len(values)), pa.int64()), "nhs": values})
    frame = spark.createDataFrame(source).repartition(3)
    schema = pa.schema([("position", pa.int64()), ("pid", pa.string())])

    result = spark_adapter.map_arrow(
        frame, functools.partial(pid_batches, MASTER_KEY, "nhs"), schema
    ).toArrow()

    assert result.num_rows == len(values)
    local = ArrowLinkagePseudonymiser(MASTER_KEY).pid_array(values)
    assert result.sort_by("position").column("pid").combine_chunks().equals(local)
    assert result.column("pid").null_count == local.null_count == 4


def test_spark_python_workers_are_other_processes_running_sde_from_this_venv(
    spark: SparkSession,
) -> None:
    frame = spark.range(0, 8, numPartitions=2)
    schema = "process long, python string, sde string"
    facts = spark_adapter.map_arrow(frame, worker_facts, schema).toArrow().to_pylist()

    assert len(facts) == 8
    assert {row["python"] for row in facts} == {sys.executable}
    assert {row["sde"] for row in facts} == {str(Path(sde.__file__).resolve())}
    assert os.getpid() not in {row["process"] for row in facts}


def test_map_arrow_takes_an_arrow_schema_and_refuses_closures(spark: SparkSession) -> None:
    frame = spark.range(0, 4)
    with pytest.raises(InputError, match="module-level function"):
        spark_adapter.map_arrow(frame, lambda batches: batches, "id long")

    def nested(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return batches

    with pytest.raises(InputError, match="module-level function"):
        spark_adapter.map_arrow(frame, functools.partial(nested), "id long")
    converted = spark_adapter.spark_schema(pa.schema([("id", pa.int64()), ("d", pa.date32())]))
    assert not isinstance(converted, str)
    assert converted.simpleString() == "struct<id:bigint,d:date>"


# --- the session itself ---------------------------------------------------------------------


def test_the_session_is_local_loopback_offline_and_arrow_based(spark: SparkSession) -> None:
    context = spark.sparkContext
    conf = context.getConf()
    assert context.master == "local[2]"
    assert conf.get("spark.driver.host") == "127.0.0.1"
    assert conf.get("spark.driver.bindAddress") == "127.0.0.1"
    assert context.uiWebUrl is None
    assert conf.get("spark.jars.packages") is None  # nothing resolved through Ivy/Maven
    jars = {Path(jar).name for jar in conf.get("spark.jars", "").split(",")}
    assert jars == {jar.name for jar in JARS_DIR.glob("*.jar")}
    assert any(name.startswith("delta-spark_4.2_2.13-") for name in jars)
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.fallback.enabled") == "false"
    assert spark.conf.get("spark.sql.extensions") == spark_adapter.DELTA_EXTENSION
    assert int(spark.conf.get("spark.sql.shuffle.partitions") or 0) == 4
    assert "-XX:TieredStopAtLevel=1" in (conf.get("spark.driver.extraJavaOptions") or "")
    # Spark's log goes to a file in the session's scratch folder, not to stderr.
    log = spark_adapter.log_file(spark)
    assert log.name == "spark.log"
    assert log.parent.name.startswith("sde-spark-")
    assert log.exists()


def test_a_failed_query_does_not_repeat_the_value_on_stderr(
    spark: SparkSession, capfd: pytest.CaptureFixture[str]
) -> None:
    from pyspark.errors import PySparkException

    marker = "943 476 5919 is not an int"
    capfd.readouterr()
    # Spark's own exception quotes the value: callers must not show it (see docs/spark.md).
    with pytest.raises(PySparkException, match="CAST_INVALID_INPUT"):
        spark.sql(f"SELECT CAST('{marker}' AS INT)").collect()
    frame = spark.createDataFrame(pa.table({"v": [marker]}))
    with pytest.raises(PySparkException, match="CAST_INVALID_INPUT"):
        frame.selectExpr("CAST(v AS INT)").collect()
    captured = capfd.readouterr()
    assert marker not in captured.err
    assert marker not in captured.out


def test_a_second_session_in_the_same_process_is_refused(spark: SparkSession) -> None:
    with pytest.raises(StateError, match="already running"):
        spark_adapter.spark_session(jars_dir=JARS_DIR)


def test_azure_locations_are_refused(spark: SparkSession) -> None:
    # S3 is supported (tests/integration/test_spark_s3.py); Azure and GCS are not.
    remote = RemoteTable("az://lake/linked/gp", {"AZURE_STORAGE_ACCOUNT_KEY": "never-shown"})
    with pytest.raises(InputError, match=r"a lake on az:// is not supported on Spark") as read:
        spark_adapter.read_delta(spark, remote)
    with pytest.raises(InputError, match="hadoop-azure") as write:
        spark_adapter.write_delta(spark.range(1), remote)
    for refused in (read, write):
        assert "never-shown" not in str(refused.value)


def test_reading_a_folder_that_is_no_delta_table_is_an_input_error(
    spark: SparkSession, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="no Delta table"):
        spark_adapter.read_delta(spark, tmp_path / "nothing")
    assert spark_adapter.history(spark, tmp_path / "nothing") == []


# --- no JVM needed --------------------------------------------------------------------------


def test_missing_jars_are_a_config_error_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as none:
        spark_adapter.spark_session(jars_dir=tmp_path / "absent")
    message = str(none.value)
    assert "delta-spark*.jar" in message
    assert "delta-storage*.jar" in message
    assert "SDE_SETUP_SPARK=1 bash scripts/setup.sh" in message

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "delta-spark_4.2_2.13-4.4.0.jar").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no delta-storage\*\.jar\)") as one:
        spark_adapter.spark_session(jars_dir=partial)
    assert "delta-spark*" not in str(one.value)


def test_a_missing_pyspark_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # import pyspark.sql fails
    with pytest.raises(ConfigError, match="Apache Spark is not installed") as refused:
        spark_adapter.spark_session(jars_dir=JARS_DIR)
    assert "`spark` extra" in str(refused.value)


def test_a_jvm_that_does_not_start_is_a_config_error(tmp_path: Path) -> None:
    # A process of its own (this one has a session): JAVA_HOME pointing at no Java.
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from sde.adapters.spark import spark_session\n"
        "from sde.errors import ConfigError\n"
        "try:\n"
        f"    spark_session(jars_dir=Path({str(JARS_DIR)!r}))\n"
        "except ConfigError as error:\n"
        "    print(error)\n"
        "    sys.exit(3)\n"
    )
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java"), "TMPDIR": str(temp)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert done.stdout.strip() == (
        "the Spark JVM did not start (Spark 4.2 needs Java 17 or newer on PATH or in JAVA_HOME)"
    )
    assert not list(temp.glob("sde-spark-*"))  # the scratch folder went with the failure


def test_session_conf_is_sized_by_cores(tmp_path: Path) -> None:
    conf = spark_adapter.session_conf(
        cores=4,
        jars=[tmp_path / "a.jar", tmp_path / "b.jar"],
        scratch=tmp_path,
        warehouse=tmp_path / "wh",
        memory="3g",
        app_name="x",
    )
    assert conf["spark.master"] == "local[4]"
    assert conf["spark.sql.shuffle.partitions"] == "8"
    assert conf["spark.databricks.delta.snapshotPartitions"] == "4"
    assert conf["spark.driver.memory"] == "3g"
    assert conf["spark.jars"] == f"{tmp_path / 'a.jar'},{tmp_path / 'b.jar'}"
    assert conf["spark.pyspark.python"] == sys.executable
    assert (
        f"-Dlog4j2.configurationFile=file:{tmp_path / 'log4j2.properties'}"
        in (conf["spark.driver.extraJavaOptions"])
    )
    assert "spark.jars.packages" not in conf
    assert "TieredStopAtLevel" not in conf["spark.driver.extraJavaOptions"]
    quick = spark_adapter.session_conf(
        cores=1,
        jars=[],
        scratch=tmp_path,
        warehouse=tmp_path,
        memory="1g",
        app_name="x",
        quick_jit=True,
    )
    assert quick["spark.driver.extraJavaOptions"].endswith(" -XX:TieredStopAtLevel=1")
    with pytest.raises(InputError, match="at least one core"):
        spark_adapter.session_conf(
            cores=0, jars=[], scratch=tmp_path, warehouse=tmp_path, memory="1g", app_name="x"
        )
