"""``sde extract --engine spark`` against the local engine: the same extract, row for row.

A synthetic population is ingested once (patients, GP events, admissions and both NHS
opt-out registers) and patients' own choices recorded (research, planning, commercial,
organisation, project); the home is then copied, so the two engines start from the same
lake and the same master key, and each builds the same two projects' extracts (an
academic research project under the national data opt-out, and a commercial planning
project exempt from it) in its own copy. The comparison is meaningful only if every kind
of rule removed somebody: the tests check that first.

One Spark session serves the module (tests/spark_session.py); the command-line tests here
run ``sde extract`` through Click's runner on that session (``SessionLog`` stands in for
the adapter's start and stop: one session per process). tests/e2e/test_cli_spark.py runs
``sde extract --engine spark`` in a process of its own, which starts and stops its own.
"""

from __future__ import annotations

import csv
import functools
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
import yaml
from click.testing import CliRunner
from deltalake import write_deltalake

from sde.adapters import delta
from sde.adapters import spark as spark_adapter
from sde.adapters.arrow_hmac import ArrowProjectPseudonymiser
from sde.adapters.delta import RemoteTable
from sde.adapters.duckdb import locked_connection
from sde.cli import main
from sde.domain import nhs_number
from sde.domain.pseudonyms import LinkagePseudonymiser, hkdf_sha256, project_info
from sde.errors import ConfigError, InputError
from sde.services.extract import (
    PATIENT_ID,
    ExtractManifest,
    ExtractRequest,
    build_extract,
    extract_dir,
    read_manifest,
)
from sde.services.extract_spark import build_extract_spark, project_pseudonym_batches
from sde.services.home import Home, init_home, open_home
from sde.services.ingest import ingest_file, load_spec
from sde.services.optouts import record_choice
from sde.services.spark_engine import CHECKOUT_JARS, SparkSettings, SparkStageFailed, spark_settings
from sde.services.synth import synthesise
from sde.services.wiring import control_plane, policy_engine
from tests.factories import airlock_project, linked_patients
from tests.spark_session import JARS_DIR, spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.delta]

DATASETS = ("patients", "gp_events", "admissions", "national_opt_out", "type1_opt_out")
ORIGINS = {"patients": "gp", "gp_events": "gp", "admissions": "hospital"}
ACADEMIC = "University of Leeds"
REQUESTS = {
    "alpha": ExtractRequest(
        project_id="alpha",
        purpose="research",
        national_opt_out_applies=True,
        datasets={
            "patients": ("sex", "year_of_birth", "postcode_district"),
            "gp_events": ("event_date", "snomed_code", "value", "unit"),
            "admissions": ("admission_date", "discharge_date", "primary_diagnosis"),
        },
        sponsor_type="academic",
        sponsor_organisation=ACADEMIC,
    ),
    "beta": ExtractRequest(
        project_id="beta",
        purpose="planning",
        national_opt_out_applies=False,
        datasets={
            "gp_events": ("snomed_code", "value"),
            "admissions": ("provider_code", "admission_method"),
        },
        sponsor_type="commercial",
        sponsor_organisation="Acme Pharma",
    ),
}
# Patients' own choices, each given to CHOSEN patients who have GP events and admissions.
CHOICES = (
    ("research", None),
    ("planning", None),
    ("commercial", None),
    ("organisation", "university of leeds"),
    ("project", "alpha"),
    ("project", "beta"),
)
CHOSEN = 2


class ListAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict[str, object]]] = []

    def record(self, actor: str, action: str, subject: str, details: Mapping[str, object]) -> None:
        self.events.append((actor, action, subject, dict(details)))


@dataclass
class Built:
    home: Home
    manifests: dict[str, ExtractManifest]
    audit: ListAudit


@dataclass
class World:
    base: Path
    local: Built
    spark: Built


def valid_nhs_numbers(path: Path) -> list[str]:
    with path.open(newline="") as f:
        numbers = [nhs_number.normalise(row["nhs_number"]) for row in csv.DictReader(f)]
    return sorted({n for n in numbers if n is not None and nhs_number.is_valid_digits(n)})


def pids_of(home: Home, dataset: str) -> set[str]:
    return set(delta.read(home.linked / dataset, columns=["pid"]).column("pid").to_pylist())


def make_base(root: Path) -> Home:
    home = init_home(root)
    synthesise(home.sources, 400, seed=13)
    for name in DATASETS:
        ingest_file(home, load_spec(name), home.sources / f"{name}.csv", actor="olu")
    link = LinkagePseudonymiser(home.master_key())
    in_both = pids_of(home, "gp_events") & pids_of(home, "admissions")
    opted_out = pids_of(home, "national_opt_out") | pids_of(home, "type1_opt_out")
    eligible = [
        n
        for n in valid_nhs_numbers(home.sources / "patients.csv")
        if link.pid(n) in in_both and link.pid(n) not in opted_out
    ]
    assert len(eligible) >= CHOSEN * len(CHOICES), "the synthetic population is too small"
    for index, (scope, target) in enumerate(CHOICES):
        for number in eligible[index * CHOSEN : (index + 1) * CHOSEN]:
            record_choice(home, number, scope, target, actor="olu", recorded_at="2026-01-01")
    # One patient changes their mind: their research opt-out is withdrawn.
    record_choice(home, eligible[0], "research", opt_in=True, actor="olu")
    return home


def copy_home(base: Path, root: Path) -> Home:
    shutil.copytree(base, root)
    return open_home(root)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, spark: SparkSession) -> World:
    folder = tmp_path_factory.mktemp("extract-engines")
    base = make_base(folder / "base").root
    local_home = copy_home(base, folder / "local")
    spark_home = copy_home(base, folder / "spark")
    local = Built(local_home, {}, ListAudit())
    on_spark = Built(spark_home, {}, ListAudit())
    for project, request in REQUESTS.items():
        local.manifests[project] = build_extract(
            local_home, request, ORIGINS, actor="olu", audit=local.audit
        )
        on_spark.manifests[project] = build_extract_spark(
            spark, spark_home, request, ORIGINS, actor="olu", audit=on_spark.audit
        )
    return World(base, local, on_spark)


def table_path(home: Home, project: str, dataset: str) -> Path:
    location = extract_dir(home, project) / dataset
    assert isinstance(location, Path)
    return location


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in table.column_names])


def extract_tables() -> list[tuple[str, str]]:
    return [(p, d) for p, r in REQUESTS.items() for d in sorted(r.datasets)]


# --- the comparison is meaningful ---------------------------------------------------------


def test_every_kind_of_rule_removed_patients(world: World) -> None:
    alpha = world.local.manifests["alpha"].tables
    beta = world.local.manifests["beta"].tables
    for rule in ("national_opt_out", "type1_opt_out", "choice:research", "choice:organisation"):
        assert alpha["gp_events"].removed_by_rule[rule]["patients"] > 0, rule
    assert alpha["admissions"].removed_by_rule["choice:project"]["patients"] == CHOSEN
    assert "type1_opt_out" not in alpha["admissions"].removed_by_rule
    for rule in ("choice:planning", "choice:commercial", "choice:project"):
        assert beta["gp_events"].removed_by_rule[rule]["patients"] > 0, rule
    assert "national_opt_out" not in beta["admissions"].removed_by_rule
    # the withdrawn opt-out: one of the two research choices stands
    assert alpha["admissions"].removed_by_rule["choice:research"]["patients"] == CHOSEN - 1


# --- the same extract ---------------------------------------------------------------------


@pytest.mark.parametrize(("project", "dataset"), extract_tables())
def test_tables_are_equal_row_for_row(world: World, project: str, dataset: str) -> None:
    local = delta.read(table_path(world.local.home, project, dataset))
    on_spark = delta.read(table_path(world.spark.home, project, dataset))
    assert on_spark.num_rows == local.num_rows > 0
    assert sorted_rows(on_spark).equals(sorted_rows(local))
    assert on_spark.column_names == [PATIENT_ID, *REQUESTS[project].datasets[dataset]]


@pytest.mark.parametrize(("project", "dataset"), extract_tables())
def test_schemas_are_equal_nullability_included(world: World, project: str, dataset: str) -> None:
    local = delta.dataset(table_path(world.local.home, project, dataset)).schema
    on_spark = delta.dataset(table_path(world.spark.home, project, dataset)).schema
    assert on_spark.equals(local)
    assert not on_spark.field(PATIENT_ID).nullable
    # the control: the source's other columns are nullable, and stay so
    assert all(field.nullable for field in on_spark if field.name != PATIENT_ID)


@pytest.mark.parametrize("project", sorted(REQUESTS))
def test_manifests_count_alike_per_table_and_rule(world: World, project: str) -> None:
    local = world.local.manifests[project]
    on_spark = world.spark.manifests[project]
    assert on_spark.opt_out_versions == local.opt_out_versions
    assert set(on_spark.tables) == set(local.tables) == set(REQUESTS[project].datasets)
    for name, table in local.tables.items():
        same = asdict(on_spark.tables[name])
        # delta-rs creates the table (version 0), Spark writes the rows (version 1)
        assert same.pop("version") == 1
        assert table.version == 0
        expected = asdict(table)
        expected.pop("version")
        assert same == expected, name
        assert table.rows_written + table.rows_removed_by_opt_out == table.rows_in_source
    assert read_manifest(world.spark.home, project) == on_spark


def test_audit_events_name_the_engine(world: World) -> None:
    for built, engine in ((world.local, "local"), (world.spark, "spark")):
        assert [e[1] for e in built.audit.events] == ["extract.build"] * len(REQUESTS)
        assert {e[3]["engine"] for e in built.audit.events} == {engine}
    for local, on_spark in zip(world.local.audit.events, world.spark.audit.events, strict=True):
        assert without_versions(on_spark[3]) == {**without_versions(local[3]), "engine": "spark"}


def without_versions(details: Mapping[str, object]) -> dict[str, object]:
    tables = details["tables"]
    assert isinstance(tables, dict)
    return {
        **details,
        "tables": {name: {**t, "version": None} for name, t in tables.items()},
    }


# --- each engine reads the other's tables -------------------------------------------------


def test_local_engine_and_duckdb_read_the_spark_extract(world: World) -> None:
    manifest = world.spark.manifests["alpha"].tables["gp_events"]
    path = table_path(world.spark.home, "alpha", "gp_events")
    assert delta.read(path, manifest.version).num_rows == manifest.rows_written
    con = locked_connection({"gp_events": path}, versions={"gp_events": manifest.version})
    try:
        rows, patients, first = con.sql(
            "SELECT count(*), count(DISTINCT patient_id), min(event_date) FROM gp_events"
        ).fetchall()[0]
    finally:
        con.close()
    local = delta.read(table_path(world.local.home, "alpha", "gp_events"))
    assert rows == manifest.rows_written == local.num_rows
    assert patients == len(set(local.column(PATIENT_ID).to_pylist()))
    assert first == min(d for d in local.column("event_date").to_pylist() if d is not None)


def test_spark_reads_the_local_extract(world: World, spark: SparkSession) -> None:
    for project, dataset in extract_tables():
        path = table_path(world.local.home, project, dataset)
        read = spark_adapter.read_delta(spark, path).toArrow()
        local = delta.read(path)
        assert sorted_rows(read).cast(local.schema).equals(sorted_rows(local)), dataset


def test_spark_refreshes_an_extract_the_local_engine_built(
    world: World, spark: SparkSession, tmp_path: Path
) -> None:
    home = copy_home(world.local.home.root, tmp_path / "h")
    before = read_manifest(home, "beta")
    # the admissions table only: one table shows it, and Spark's jobs take seconds here
    request = replace(
        REQUESTS["beta"], datasets={"admissions": ("provider_code", "admission_method")}
    )
    again = build_extract_spark(spark, home, request, ORIGINS, actor="olu")
    assert set(again.tables) == {"admissions"}
    before.tables.pop("gp_events")
    for name, table in before.tables.items():
        path = table_path(home, "beta", name)
        # same columns: Spark overwrites the local engine's table as one new version
        assert again.tables[name].version == table.version + 1
        assert again.tables[name].removed_by_rule == table.removed_by_rule
        old = delta.read(path, table.version)
        assert sorted_rows(delta.read(path)).equals(sorted_rows(old))
        assert delta.dataset(path).schema.equals(old.schema)


# --- keys and failures --------------------------------------------------------------------


def test_workers_get_the_project_key_never_the_master_key() -> None:
    master = bytes(range(32))
    schema = pa.schema([pa.field(PATIENT_ID, pa.string(), nullable=False)])
    transform = functools.partial(
        project_pseudonym_batches,
        pseudonymiser=ArrowProjectPseudonymiser(master, "alpha"),
        schema=schema,
    )
    shipped = pickle.dumps(transform)
    assert master not in shipped
    assert hkdf_sha256(master, project_info("alpha")) in shipped
    assert hkdf_sha256(master, project_info("beta")) not in shipped


SECRET_NHS = "9434765919"
SECRET_NAME = "Ravenscroft"


def broken_home(root: Path) -> Home:
    """admissions fine; gp_events holds a pid that is no pid (a name, an NHS number and a
    non-ASCII character), which the project pseudonymiser refuses on the workers."""
    home = init_home(root)
    pids = [LinkagePseudonymiser(home.master_key()).pid(n) for n in ("4010232137", "4010232145")]
    write_deltalake(
        str(home.linked / "admissions"),
        pa.table({"pid": pids, "primary_diagnosis": ["E11.9", "I21.9"]}),
    )
    write_deltalake(
        str(home.linked / "gp_events"),
        pa.table(
            {"pid": [pids[0], f"{SECRET_NAME} {SECRET_NHS} é"], "snomed_code": ["1", "2"]},
        ),
    )
    for register in ("national_opt_out", "type1_opt_out"):
        write_deltalake(str(home.linked / register), pa.table({"pid": pa.array([], pa.string())}))
    return home


def test_a_spark_failure_names_stage_and_table_without_values(
    spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = broken_home(tmp_path / "h")
    request = ExtractRequest(
        "gamma",
        "research",
        True,
        {"admissions": ("primary_diagnosis",), "gp_events": ("snomed_code",)},
    )
    with pytest.raises(SparkStageFailed) as caught:
        build_extract_spark(spark, home, request, ORIGINS, actor="olu")
    message = str(caught.value)
    assert "pseudonymising and writing the extract table" in message
    assert "project gamma, table gp_events" in message
    assert "TASK_WRITE_FAILED: a Python worker raised ValueError" in message
    assert SECRET_NHS not in message
    assert SECRET_NAME not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    # the control: the error Spark raised is there, kept from the message
    assert "ValueError: a pid value is not ASCII" in str(caught.value.__context__)
    out, err = capfd.readouterr()
    assert SECRET_NHS not in out + err
    assert SECRET_NAME not in out + err
    # mid-build: admissions was written, gp_events has no rows committed, no manifest
    extract = extract_dir(home, "gamma")
    assert isinstance(extract, Path)
    assert delta.read(extract / "admissions").num_rows == 2
    assert delta.read(extract / "gp_events").num_rows == 0
    assert not (extract / "manifest.json").exists()


@pytest.mark.parametrize(
    ("url", "missing"),
    [
        ("az://lake/prod", "hadoop-azure"),
        ("abfss://lake@acct.dfs.core.windows.net/prod", "hadoop-azure"),
    ],
)
def test_a_lake_on_azure_is_refused_before_spark_runs(
    spark: SparkSession, url: str, missing: str
) -> None:
    """Only S3 is wired for Spark (tests/integration/test_spark_s3.py); Azure is refused,
    naming the connector it lacks, before anything is read."""

    class Remote:
        lake_is_remote = True
        lake = RemoteTable(url, {"AZURE_STORAGE_ACCOUNT_KEY": "k3y"})

        def master_key(self) -> bytes:
            raise AssertionError("the key was asked for before the lake was refused")

    with pytest.raises(InputError, match=missing) as refused:
        build_extract_spark(spark, Remote(), REQUESTS["beta"], ORIGINS, actor="olu")  # type: ignore[arg-type]
    assert "use --engine local" in str(refused.value)
    assert "k3y" not in str(refused.value)


# --- settings -----------------------------------------------------------------------------


def test_spark_settings_from_config(tmp_path: Path) -> None:
    assert SparkSettings.from_mapping(None, root=tmp_path) == SparkSettings(2, "2g", None)
    settings = SparkSettings.from_mapping(
        {"cores": 4, "memory": "6G", "jars_dir": "jars"}, root=tmp_path
    )
    assert settings == SparkSettings(4, "6g", tmp_path / "jars")
    assert settings.jars() == tmp_path / "jars"
    assert settings.with_overrides(cores=1, memory="512m") == SparkSettings(
        1, "512m", tmp_path / "jars"
    )
    assert SparkSettings().jars() == CHECKOUT_JARS == JARS_DIR
    for bad, words in [
        ({"cores": 0}, "cores"),
        ({"cores": True}, "cores"),
        ({"memory": "lots"}, "memory"),
        ({"memory": 4}, "memory"),
        ({"jars_dir": 3}, "jars_dir"),
        ({"executors": 3}, "executors"),
        (["cores"], "mapping"),
    ]:
        with pytest.raises(ConfigError, match=words):
            SparkSettings.from_mapping(bad, root=tmp_path)


def test_missing_jars_say_how_to_fetch_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sde.services.spark_engine as engine

    monkeypatch.setattr(engine, "CHECKOUT_JARS", tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"jars_dir.*setup_spark\.sh"):
        SparkSettings().jars()


# --- the command line ---------------------------------------------------------------------


def cli_home(root: Path, spark_section: dict[str, object] | None = None) -> Home:
    """A home with the airlock's cast: project diabetes approved for patients.sex."""
    home = init_home(root)
    if spark_section is not None:
        config = root / "config.yaml"
        data = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**data, "spark": spark_section}))
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home))
    linked_patients(home, ["9434765919", "9434765870", "4010232137"])
    return open_home(root)


def test_cli_refuses_spark_options_with_the_local_engine(tmp_path: Path) -> None:
    home = cli_home(tmp_path / "h")
    args = ["extract", "diabetes", "--actor", "olu", "--home", str(home.root)]
    result = CliRunner().invoke(main, [*args, "--spark-cores", "2"])
    assert result.exit_code == 2
    assert "go with --engine spark" in result.output


def test_cli_reports_missing_jars_before_deciding(tmp_path: Path) -> None:
    empty = tmp_path / "no-jars"
    empty.mkdir()
    home = cli_home(tmp_path / "h", {"jars_dir": str(empty)})
    assert spark_settings(home).jars() == empty
    args = ["extract", "diabetes", "--engine", "spark", "--actor", "olu", "--home", str(home.root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "Delta's jars for Spark are missing" in result.output
    assert not (home.local_lake / "projects" / "diabetes" / "extract").exists()


class SessionLog:
    """Stands in for the adapter's session start and stop in the command-line tests: the
    command gets the module's running session (one per process), and what it asked for
    and whether it stopped it are recorded."""

    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self.started: list[dict[str, object]] = []
        self.stopped: list[SparkSession] = []

    def start(self, **settings: object) -> SparkSession:
        self.started.append(settings)
        return self.session

    def stop(self, session: SparkSession) -> None:
        self.stopped.append(session)


@pytest.fixture
def session_log(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> SessionLog:
    log = SessionLog(spark)
    monkeypatch.setattr(spark_adapter, "spark_session", log.start)
    monkeypatch.setattr(spark_adapter, "stop", log.stop)
    return log


@pytest.mark.e2e
def test_cli_extract_on_spark_equals_the_local_engine(
    session_log: SessionLog, tmp_path: Path
) -> None:
    home = cli_home(tmp_path / "h", {"cores": 1, "memory": "3g"})
    common = ["extract", "diabetes", "--actor", "olu", "--home", str(home.root)]
    result = CliRunner().invoke(
        main, [*common, "--engine", "spark", "--spark-memory", "1g"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "patients: 3 rows, columns patient_id, sex" in result.output
    assert session_log.started == [
        {"cores": 1, "memory": "1g", "jars_dir": JARS_DIR, "app_name": "sde-extract"}
    ]
    assert session_log.stopped == [session_log.session]
    path = table_path(home, "diabetes", "patients")
    on_spark = delta.read(path)
    spark_manifest = read_manifest(home, "diabetes")

    result = CliRunner().invoke(main, common, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted_rows(delta.read(path)).equals(sorted_rows(on_spark))
    local_manifest = read_manifest(home, "diabetes")
    assert local_manifest.tables["patients"].rows_written == 3
    assert (
        local_manifest.tables["patients"].version == spark_manifest.tables["patients"].version + 1
    )
    assert {**asdict(spark_manifest.tables["patients"]), "version": 0} == {
        **asdict(local_manifest.tables["patients"]),
        "version": 0,
    }


@pytest.mark.e2e
def test_cli_stops_spark_when_the_build_fails(session_log: SessionLog, tmp_path: Path) -> None:
    home = cli_home(tmp_path / "h")
    shutil.rmtree(home.local_lake / "linked" / "national_opt_out")
    args = ["extract", "diabetes", "--engine", "spark", "--actor", "olu", "--home", str(home.root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "national_opt_out register has not been ingested" in result.output
    assert len(session_log.started) == 1
    assert session_log.stopped == [session_log.session]
