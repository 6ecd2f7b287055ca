"""The Spark engines on a lake on S3, against a real S3 server (versitygw,
tests/objstore.py) and Hadoop's S3A connector (``hadoop-aws`` + the AWS SDK v2 modules
that ``scripts/setup_spark.sh`` pins).

Two homes with one master key, each with its lake in its own bucket (endpoint and region
in ``config.yaml``, credentials only in ``SDE_LAKE_*`` variables): one ingests and
extracts with the local engine (delta-rs), the other with Spark. Their tables are equal
row for row (sorted), schemas with nullability, quarantine, sign-in checks, manifests;
each engine reads the other's tables; nothing of either lake lands under ``<home>/lake``.
Wrong credentials fail with one line naming the lake, never the secret; a failing Spark
job on S3 prints no credential. The S3A settings themselves (TLS, path style, providers,
Azure and GCS refused) are checked as plain values.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.adapters.delta import RemoteTable
from sde.adapters.lake_files import LakeUnavailable
from sde.cli import main
from sde.errors import ConfigError, InputError, StateError
from sde.services import ingest
from sde.services.extract import ExtractManifest, ExtractRequest, build_extract, extract_dir
from sde.services.extract_spark import build_extract_spark
from sde.services.home import Home, init_home, lake_environment, open_home
from sde.services.ingest_spark import ingest_file_spark
from sde.services.synth import synthesise
from tests.browser import free_port
from tests.objstore import S3Server, s3_server
from tests.spark_session import JARS_DIR, spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.delta]

PREFIX = "prod"
DATASETS = ("patients", "gp_events", "admissions", "deaths", "national_opt_out", "type1_opt_out")
ORIGINS = {"patients": "gp", "gp_events": "gp", "admissions": "hospital"}
REQUEST = ExtractRequest(
    project_id="alpha",
    purpose="research",
    national_opt_out_applies=True,
    datasets={
        "patients": ("sex", "year_of_birth", "postcode_district"),
        "gp_events": ("event_date", "snomed_code", "value", "unit"),
    },
    sponsor_type="academic",
    sponsor_organisation="University of Leeds",
)
VERSIONS = ("linked_version", "quarantine_version")


@dataclass
class World:
    s3: S3Server
    local: Home
    on_spark: Home
    results: dict[str, list[ingest.IngestResult]]
    extracts: dict[str, ExtractManifest]
    log_start: int
    """Where this module's part of the session's Spark log begins."""


def s3_home(root: Path, s3: S3Server, bucket: str, **credentials: str) -> Home:
    """A home whose lake is ``s3://<bucket>/prod``: plain options in ``config.yaml``, the
    credentials (``credentials`` override the server's) in ``SDE_LAKE_*`` variables."""
    s3.bucket(bucket)
    options = s3.storage_options(**credentials)
    path = root / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["lake"] = {
        "url": f"s3://{bucket}/{PREFIX}",
        "options": {k: options[k] for k in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ALLOW_HTTP")},
    }
    path.write_text(yaml.safe_dump(config))
    env = {
        f"SDE_LAKE_{k}": options[k]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        if k in options
    }
    return open_home(root, lake_environment=lake_environment(env))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("spark-s3")
    log = sp.log_file(spark)
    log_start = log.stat().st_size if log.exists() else 0
    with s3_server(folder) as s3:
        local_root = init_home(folder / "local").root
        spark_root = init_home(folder / "spark").root
        synthesise(local_root / "sources", 120, seed=7)
        # Free text (Presidio on the workers) is compared in test_ingest_spark.py.
        (local_root / "sources" / "clinic_letters.csv").unlink()
        shutil.rmtree(spark_root / "sources")
        shutil.copytree(local_root / "sources", spark_root / "sources")
        local = s3_home(local_root, s3, "lake-local")
        on_spark = dataclasses.replace(
            s3_home(spark_root, s3, "lake-spark"), key_override=local.master_key()
        )
        results = {
            "local": ingest.ingest_all(local, actor="olu"),
            "spark": ingest.ingest_all(on_spark, actor="olu", spark=spark),
        }
        extracts = {
            "local": build_extract(local, REQUEST, ORIGINS, actor="olu"),
            "spark": build_extract_spark(spark, on_spark, REQUEST, ORIGINS, actor="olu"),
        }
        yield World(s3, local, on_spark, results, extracts, log_start)


def rows(location: delta.Location, drop: Iterable[str] = ()) -> list[dict[str, object]]:
    if not delta.exists(location):
        return []
    dropped = set(drop)
    found = delta.read(location).to_pylist()
    return sorted(
        ({k: v for k, v in row.items() if k not in dropped} for row in found),
        key=lambda r: [repr(v) for v in r.values()],
    )


def manifest(home: Home) -> list[dict[str, object]]:
    drop = {"ingested_at", *VERSIONS}
    return [{k: v for k, v in r.items() if k not in drop} for r in ingest.ingest_manifest(home)]


def stored(s3: S3Server, bucket: str) -> set[str]:
    """The lake's zones as the server keeps them on its disk."""
    return {p.name for p in (s3.root / bucket / PREFIX).iterdir()}


# --- both engines, one lake each on S3 ----------------------------------------------------


def test_ingest_on_spark_equals_the_local_engine(world: World) -> None:
    local, on_spark = world.local, world.on_spark
    assert isinstance(on_spark.lake, RemoteTable)
    assert on_spark.lake.uri == f"s3://lake-spark/{PREFIX}"

    def summary(results: list[ingest.IngestResult]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in dataclasses.asdict(r).items() if k not in VERSIONS} for r in results
        ]

    assert summary(world.results["spark"]) == summary(world.results["local"])
    assert {r.dataset for r in world.results["spark"]} == set(DATASETS)
    assert sum(r.rows_quarantined for r in world.results["spark"]) > 0
    for name in DATASETS:
        linked = rows(ingest.linked_path(local, name))
        assert linked, name
        assert rows(ingest.linked_path(on_spark, name)) == linked, name
        schema = delta.dataset(ingest.linked_path(local, name)).schema
        assert delta.dataset(ingest.linked_path(on_spark, name)).schema == schema, name
        assert not schema.field("pid").nullable
        drop = ("quarantined_at",)
        quarantined = rows(ingest.quarantine_path(local, name), drop)
        assert rows(ingest.quarantine_path(on_spark, name), drop) == quarantined, name
    signed = rows(ingest.sign_in_path(local), ("loaded_at",))
    assert signed
    assert rows(ingest.sign_in_path(on_spark), ("loaded_at",)) == signed
    assert manifest(on_spark) == manifest(local)
    # the tables are on the server, nothing under <home>/lake, no staged rows left
    assert {"linked", "quarantine", "manifests"} <= stored(world.s3, "lake-spark")
    assert not [p for p in (on_spark.root / "lake").rglob("*") if p.is_file()]
    assert not list(on_spark.root.glob(".ingest-spark-*"))


def test_extract_on_spark_equals_the_local_engine(world: World) -> None:
    local, on_spark = world.extracts["local"], world.extracts["spark"]
    for dataset in REQUEST.datasets:
        expected = delta.read(extract_dir(world.local, "alpha") / dataset)
        found = delta.read(extract_dir(world.on_spark, "alpha") / dataset)
        assert found.num_rows == expected.num_rows > 0, dataset
        order = [(name, "ascending") for name in expected.column_names]
        assert found.sort_by(order).equals(expected.sort_by(order)), dataset
        assert found.schema == expected.schema, dataset
        assert not found.schema.field("patient_id").nullable

    def table(m: ExtractManifest, name: str) -> dict[str, Any]:
        # Versions differ on purpose: Spark's first write to a table follows delta-rs's
        # empty commit (so the linked tables it ingested are one version ahead).
        drop = ("version", "source_version")
        return {k: v for k, v in dataclasses.asdict(m.tables[name]).items() if k not in drop}

    for dataset in REQUEST.datasets:
        assert table(on_spark, dataset) == table(local, dataset)
        pinned = on_spark.tables[dataset].source_version
        assert pinned == delta.version(ingest.linked_path(world.on_spark, dataset))
    assert local.tables["gp_events"].rows_removed_by_opt_out > 0
    assert (world.s3.root / "lake-spark" / PREFIX / "projects" / "alpha" / "extract").is_dir()


def test_each_engine_reads_the_others_tables(world: World, spark: SparkSession) -> None:
    # Spark reads the local engine's linked table and extract on S3 ...
    for location in (
        ingest.linked_path(world.local, "gp_events"),
        extract_dir(world.local, "alpha") / "gp_events",
    ):
        expected = delta.read(location)
        read = sp.read_delta(spark, location).toArrow().cast(expected.schema)
        order = [(name, "ascending") for name in expected.column_names]
        assert read.num_rows == expected.num_rows > 0
        assert read.sort_by(order).equals(expected.sort_by(order))
    # ... and its history (delta-rs's commits), through s3a://
    local_history = sp.history(spark, ingest.linked_path(world.local, "gp_events"))
    assert local_history
    assert local_history[0]["engineInfo"].startswith("delta-rs")
    # delta-rs reads Spark's commits (the rows are compared above) and their provenance
    spark_history = delta.history(ingest.linked_path(world.on_spark, "gp_events"))
    assert any("Apache-Spark" in str(entry.get("engineInfo", "")) for entry in spark_history)
    assert sp.delta_version(spark, ingest.linked_path(world.on_spark, "gp_events")) == (
        delta.version(ingest.linked_path(world.on_spark, "gp_events"))
    )


def test_spark_refreshes_the_local_engines_extract_on_s3(world: World, spark: SparkSession) -> None:
    """Spark writes over a table delta-rs made on S3: one new version, the same rows."""
    location = extract_dir(world.local, "alpha") / "gp_events"
    before = delta.read(location)
    version = delta.version(location)
    assert version is not None
    refreshed = build_extract_spark(spark, world.local, REQUEST, ORIGINS, actor="olu")
    assert refreshed.tables["gp_events"].version == version + 1
    after = delta.read(location)
    order = [(name, "ascending") for name in before.column_names]
    assert after.sort_by(order).equals(before.sort_by(order))


@pytest.mark.e2e
@pytest.mark.sql
@pytest.mark.policy
def test_the_command_line_ingests_on_spark_into_s3(
    world: World, spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sde ingest DATASET FILE --engine spark`` (Click's runner; the command gets the
    module's session, one per process): the home's lake on S3 from ``config.yaml`` and
    ``SDE_LAKE_*``, the same rows as the local engine's; with a wrong secret, one line
    naming the lake and no secret."""
    started: list[dict[str, object]] = []
    stopped: list[object] = []

    def start(**settings: object) -> SparkSession:
        started.append(settings)
        return spark

    monkeypatch.setattr(sp, "spark_session", start)
    monkeypatch.setattr(sp, "stop", stopped.append)
    root = init_home(tmp_path / "h").root
    shutil.copyfile(world.local.key_path, root / "keys" / "master.key")
    source = world.local.sources / "deaths.csv"
    home = s3_home(root, world.s3, "lake-cli")
    env = {
        "SDE_LAKE_AWS_ACCESS_KEY_ID": world.s3.access_key,
        "SDE_LAKE_AWS_SECRET_ACCESS_KEY": world.s3.secret_key,
    }
    args = ["ingest", "deaths", str(source), "--engine", "spark", "--actor", "olu"]
    args += ["--no-progress", "--home", str(root)]
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deaths: deaths.csv:")
    assert started == [{"cores": 2, "memory": "2g", "jars_dir": JARS_DIR, "app_name": "sde-ingest"}]
    assert stopped == [spark]
    linked = ingest.linked_path(home, "deaths")
    assert str(linked) == f"s3://lake-cli/{PREFIX}/linked/deaths"
    assert rows(linked) == rows(ingest.linked_path(world.local, "deaths"))
    assert (world.s3.root / "lake-cli" / PREFIX / "linked" / "deaths" / "_delta_log").is_dir()

    wrong = {**env, "SDE_LAKE_AWS_SECRET_ACCESS_KEY": "wrong-" + world.s3.secret_key}
    refused = CliRunner().invoke(main, args, env=wrong)
    assert refused.exit_code != 0
    assert refused.output.strip().splitlines() == [
        f"error: the lake's store refused access to s3://lake-cli/{PREFIX}: check the lake "
        "credentials (SDE_LAKE_* variables) and the store's policy"
    ]
    assert world.s3.secret_key not in refused.output


# --- credentials --------------------------------------------------------------------------


def test_without_keys_spark_takes_the_aws_sdks_default_chain(
    world: World, spark: SparkSession
) -> None:
    """A lake whose options hold no keys: S3A asks the AWS SDK's default chain, here its
    Java properties (on a cluster: web identity, the pod's or instance's role)."""
    options = world.s3.storage_options()
    world.s3.bucket("lake-chain")
    table = RemoteTable("s3://lake-chain/prod/t", options)
    delta.append(table, pa.table({"pid": ["a", "b", "c"]}))
    plain = {k: v for k, v in options.items() if not k.startswith(("AWS_ACCESS", "AWS_SECRET"))}
    keyless = RemoteTable(table.uri, plain)
    assert sp.s3a_settings(keyless).hadoop["fs.s3a.bucket.lake-chain.aws.credentials.provider"] == (
        sp.DEFAULT_CREDENTIALS
    )
    # the control: without the properties the chain finds nothing (another bucket: S3A
    # keeps one client per bucket)
    world.s3.bucket("lake-nochain")
    with pytest.raises(LakeUnavailable, match="s3://lake-nochain/prod"):
        sp.use_lake(spark, RemoteTable("s3://lake-nochain/prod", plain))
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    system = jvm.java.lang.System
    system.setProperty("aws.accessKeyId", world.s3.access_key)
    system.setProperty("aws.secretAccessKey", world.s3.secret_key)
    try:
        sp.use_lake(spark, keyless)
        found = sp.read_delta(spark, keyless).toArrow()
    finally:
        system.clearProperty("aws.accessKeyId")
        system.clearProperty("aws.secretAccessKey")
    assert sorted(found.column("pid").to_pylist()) == ["a", "b", "c"]


def test_wrong_credentials_fail_with_one_line_naming_the_lake(
    world: World, spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    wrong = "wrong-" + world.s3.secret_key[::-1]
    root = init_home(tmp_path / "h").root
    synthesise(root / "sources", 10, seed=3)
    home = s3_home(root, world.s3, "lake-wrong", AWS_SECRET_ACCESS_KEY=wrong)
    capfd.readouterr()
    calls = [
        lambda: ingest_file_spark(
            spark,
            home,
            ingest.load_spec("deaths"),
            root / "sources" / "deaths.csv",
            ["nhs_number"],
        ),
        lambda: build_extract_spark(spark, home, REQUEST, ORIGINS, actor="olu"),
        lambda: sp.use_lake(spark, home.lake),
    ]
    for call in calls:
        with pytest.raises(LakeUnavailable) as refused:
            call()
        message = str(refused.value)
        assert message == (
            f"the lake's store refused access to s3://lake-wrong/{PREFIX}: check the lake "
            "credentials (SDE_LAKE_* variables) and the store's policy"
        )
        assert refused.value.__cause__ is None
        assert refused.value.__suppress_context__
    out, err = capfd.readouterr()
    for secret in (wrong, world.s3.secret_key):
        assert secret not in out + err
    assert not (world.s3.root / "lake-wrong" / PREFIX).exists()


def test_an_unreachable_store_fails_quickly_naming_the_lake(spark: SparkSession) -> None:
    """Nothing listens at the endpoint: the check gives up in seconds (S3A's own retries
    would take about two minutes), with one line naming the lake."""
    options = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "sde-test",
        "AWS_SECRET_ACCESS_KEY": "not-a-real-secret-123",
    }
    started = time.monotonic()
    with pytest.raises(LakeUnavailable) as refused:
        sp.use_lake(spark, RemoteTable("s3://lake-nowhere/prod", options))
    assert time.monotonic() - started < 30
    assert str(refused.value) == (
        "cannot reach the lake at s3://lake-nowhere/prod (Py4JJavaError); check lake.url, "
        "the endpoint and the network"
    )


def test_a_failing_spark_job_on_s3_prints_no_credential(
    world: World, spark: SparkSession, capfd: pytest.CaptureFixture[str]
) -> None:
    table = world.on_spark.lake / "broken"
    delta.append(table, pa.table({"pid": ["a", "b"], "n": [1, 2]}))
    for part in (world.s3.root / "lake-spark" / PREFIX / "broken").glob("*.parquet"):
        part.unlink()  # the commit names a file the store no longer has
    capfd.readouterr()
    with pytest.raises(Exception) as failed:
        sp.read_delta(spark, table).select("n").collect()
    assert "broken" in str(failed.value), "the control: Spark's error names the table"
    out, err = capfd.readouterr()
    with sp.log_file(spark).open("rb") as file:
        file.seek(world.log_start)
        log = file.read().decode("utf-8", errors="replace")
    for secret in (world.s3.secret_key, world.s3.access_key):
        assert secret not in out + err
        assert secret not in str(failed.value)
    assert "FILE_NOT_EXIST" in log, "the control: Spark logged the failure"
    assert world.s3.secret_key not in log
    # S3A and the SDK found every class they asked for (ingest and extract ran on S3 in
    # this session: reads, writes, listings; Spark logs at WARN and above)
    assert "ClassNotFoundException" not in log
    assert "NoClassDefFoundError" not in log
    # the credentials are in the Hadoop configuration only, never in Spark's own
    spark_conf = repr(spark.sparkContext.getConf().getAll())
    assert world.s3.secret_key not in spark_conf
    # and Spark's redaction (spark.redaction.regex, its default here) hides them where
    # Spark shows its configuration, should an operator put them there
    settings = sp.s3a_settings(world.on_spark.lake)  # type: ignore[arg-type]
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = jvm.org.apache.spark.SparkConf(False)
    for key, value in settings.hadoop.items():
        conf.set(f"spark.hadoop.{key}", value)
    shown = str(conf.toDebugString())
    assert "spark.hadoop.fs.s3a.bucket.lake-spark.endpoint=http://127.0.0.1" in shown
    assert world.s3.secret_key not in shown
    assert world.s3.access_key not in shown
    assert shown.count("(redacted)") == 2  # the access key and the secret
    assert world.s3.secret_key not in repr(settings)


JOB = """
import os, sys
from pathlib import Path
from sde.adapters import spark as sp
from sde.adapters.delta import RemoteTable

names = ("AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP", "AWS_REGION", "AWS_ACCESS_KEY_ID",
         "AWS_SECRET_ACCESS_KEY")
table = RemoteTable(sys.argv[1], {n: os.environ["SDE_LAKE_" + n] for n in names})
session = sp.spark_session(cores=1, jars_dir=Path(sys.argv[2]), memory="512m",
                           app_name="s3-job", quick_jit=True)
try:
    sp.use_lake(session, table)
    sp.read_delta(session, table).select("n").collect()  # fails: raised uncaught, in full
finally:
    log = sp.log_file(session).read_text(encoding="utf-8", errors="replace")
    sys.stderr.write("\\n--- spark.log ---\\n" + log)
    sp.stop(session)
"""


@pytest.mark.slow
def test_a_failing_spark_job_on_s3_shows_no_credential_anywhere(world: World) -> None:
    """A process of its own (its own Spark, its own JVM, so everything the JVM prints is
    caught): a job on S3 fails and its error is left uncaught, traceback, Spark's message
    and Spark's log printed in full; no credential is in any of it."""
    table = world.on_spark.lake / "broken-job"
    delta.append(table, pa.table({"pid": ["a", "b"], "n": [1, 2]}))
    for part in (world.s3.root / "lake-spark" / PREFIX / "broken-job").glob("*.parquet"):
        part.unlink()
    options = world.s3.storage_options()
    env = {**os.environ, **{f"SDE_LAKE_{k}": v for k, v in options.items()}}
    env.pop("PYSPARK_SUBMIT_ARGS", None)
    done = subprocess.run(
        [sys.executable, "-c", JOB, str(table), str(JARS_DIR)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    printed = done.stdout + done.stderr
    assert done.returncode != 0
    # the control: the job failed on the missing file, and said so at length
    assert "broken-job" in printed
    assert "Traceback" in printed
    assert "--- spark.log ---" in printed
    assert world.s3.secret_key not in printed
    assert world.s3.access_key not in printed


# --- the settings, as values --------------------------------------------------------------


def settings_of(uri: str, **options: str) -> Mapping[str, str]:
    found = sp.s3a_settings(RemoteTable(uri, options))
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    prefix = f"fs.s3a.bucket.{bucket}."
    assert all(key.startswith(prefix) for key in found.hadoop)
    return {key.removeprefix(prefix): value for key, value in found.hadoop.items()}


def test_s3a_settings_mirror_the_lakes_options() -> None:
    assert settings_of(
        "s3://b/p",
        AWS_ENDPOINT_URL="http://127.0.0.1:9000/",
        AWS_ALLOW_HTTP="true",
        AWS_REGION="eu-west-2",
        AWS_ACCESS_KEY_ID="id",
        AWS_SECRET_ACCESS_KEY="secret",
    ) == {
        "endpoint": "http://127.0.0.1:9000",
        "connection.ssl.enabled": "false",
        "path.style.access": "true",
        "endpoint.region": "eu-west-2",
        "access.key": "id",
        "secret.key": "secret",
        "aws.credentials.provider": sp.SIMPLE_CREDENTIALS,
    }
    https = settings_of(
        "s3a://b/p",
        AWS_ENDPOINT_URL="https://s3.example.org",
        AWS_VIRTUAL_HOSTED_STYLE_REQUEST="true",
        AWS_ACCESS_KEY_ID="id",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_SESSION_TOKEN="token",
    )
    assert https["connection.ssl.enabled"] == "true"
    assert https["path.style.access"] == "false"
    assert https["session.token"] == "token"
    assert https["aws.credentials.provider"] == sp.TEMPORARY_CREDENTIALS
    # no keys: the SDK's default chain, with a web identity given as Java properties
    found = sp.s3a_settings(
        RemoteTable(
            "s3://b/p",
            {"AWS_ROLE_ARN": "arn:aws:iam::1:role/sde", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"},
        )
    )
    assert found.hadoop["fs.s3a.bucket.b.aws.credentials.provider"] == sp.DEFAULT_CREDENTIALS
    assert found.hadoop["fs.s3a.bucket.b.connection.ssl.enabled"] == "true"
    assert "fs.s3a.bucket.b.endpoint" not in found.hadoop
    assert dict(found.system_properties) == {
        "aws.roleArn": "arn:aws:iam::1:role/sde",
        "aws.webIdentityTokenFile": "/t",
        "aws.roleSessionName": "sde",
    }
    assert sp.spark_uri(RemoteTable("s3://b/p/linked/gp")) == "s3a://b/p/linked/gp"
    assert sp.spark_uri(RemoteTable("s3a://b/p")) == "s3a://b/p"
    assert sp.spark_uri(Path("/x/y")) == "/x/y"


def test_plain_http_needs_allow_http_and_a_real_address() -> None:
    with pytest.raises(ConfigError, match="AWS_ALLOW_HTTP"):
        settings_of("s3://b/p", AWS_ENDPOINT_URL="http://127.0.0.1:9000")
    with pytest.raises(ConfigError, match="http\\(s\\) address"):
        settings_of("s3://b/p", AWS_ENDPOINT_URL="ftp://127.0.0.1")


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("az://c/lake", "hadoop-azure"),
        ("abfss://c@a.dfs.core.windows.net/lake", "hadoop-azure"),
        ("gs://b/lake", "GCS connector"),
    ],
)
def test_azure_and_gcs_lakes_are_refused_on_spark(uri: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as refused:
        sp.spark_uri(RemoteTable(uri, {"AZURE_STORAGE_ACCOUNT_KEY": "k3y"}))
    assert "use --engine local" in str(refused.value)
    assert "k3y" not in str(refused.value)
    with pytest.raises(InputError, match=words):
        sp.s3a_settings(RemoteTable(uri))


def test_a_session_without_s3a_jars_is_refused_by_name() -> None:
    class Conf:
        def get(self, key: str, default: str | None = None) -> str:
            assert key == "spark.jars"
            return "/j/delta-spark_4.2_2.13-4.4.0.jar,/j/delta-storage-4.4.0.jar"

    class Session:
        conf = Conf()

    with pytest.raises(ConfigError, match="hadoop-aws") as refused:
        sp.use_lake(Session(), RemoteTable("s3://b/p"))  # type: ignore[arg-type]
    assert "setup_spark.sh" in str(refused.value)


def test_a_bucket_reached_with_other_settings_is_refused(world: World, spark: SparkSession) -> None:
    lake = world.on_spark.lake
    assert isinstance(lake, RemoteTable)
    sp.use_lake(spark, lake)  # the same settings again: fine
    other = RemoteTable(lake.uri, {**lake.storage_options, "AWS_REGION": "eu-west-1"})
    with pytest.raises(StateError, match="bucket lake-spark with other S3 settings"):
        sp.use_lake(spark, other)
