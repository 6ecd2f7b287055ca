"""``sde ingest --engine spark``: Spark in local mode (real Python workers, real Delta
tables through delta-spark) gives what the local engine gives: the same linked rows (same
pids), the same quarantine rows (record numbers, reasons, raw rows), the same sign-in
checks, the same counts; each engine reads and appends to the other's tables, and knows
the other's commits; a failure names the stage, never a value.

Tables are compared as sorted rows: neither engine keeps the order of rows in the files
it writes. Table versions differ on purpose: Spark's first write to a new table follows
an empty commit by delta-rs that gives the table its NOT NULL columns."""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from sde.adapters import delta
from sde.adapters import spark as sp
from sde.adapters.delta import RemoteTable
from sde.cli import main
from sde.domain.datasets import Pii
from sde.errors import InputError, StateError
from sde.services import ingest
from sde.services import ingest_spark as engine
from sde.services.home import Home, init_home
from sde.services.spark_engine import SparkStageFailed
from sde.services.synth import synthesise
from tests.integration.ingest_fixtures import make_sources
from tests.integration.test_ingest_engines import _gp_rows
from tests.spark_session import spark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark"]  # the session fixture, used by name below

pytestmark = [pytest.mark.spark, pytest.mark.delta]

ORDER = ["patients", "admissions", "clinic_letters", "deaths", "gp_events"]
ORDER += ["national_opt_out", "type1_opt_out"]
GP_HEADER = "nhs_number,event_date,snomed_code,term,value,unit"
VERSIONS = ("linked_version", "quarantine_version")


def _homes(tmp_path: Path) -> tuple[Home, Home]:
    local = init_home(tmp_path / "local")
    on_spark = init_home(tmp_path / "spark")
    return local, dataclasses.replace(on_spark, key_override=local.master_key())


def _rows(path: delta.Location, drop: Iterable[str] = ()) -> list[dict[str, object]]:
    if not delta.exists(path):
        return []
    dropped = set(drop)
    rows = delta.read(path).to_pylist()
    return sorted(
        ({k: v for k, v in row.items() if k not in dropped} for row in rows),
        key=lambda r: [repr(v) for v in r.values()],
    )


def _result(result: ingest.IngestResult) -> dict[str, object]:
    return {k: v for k, v in dataclasses.asdict(result).items() if k not in VERSIONS}


def _manifest(home: Home) -> list[dict[str, object]]:
    drop = {"ingested_at", *VERSIONS}
    return [{k: v for k, v in r.items() if k not in drop} for r in ingest.ingest_manifest(home)]


def _ingest_both(
    spark: SparkSession,
    homes: tuple[Home, Home],
    dataset: str,
    path: Path,
    batch_rows: int = ingest.BATCH_ROWS,
) -> ingest.IngestResult:
    references = {"patients": homes[0].sources / "patients.csv"}
    spec = ingest.load_spec(dataset)
    local = ingest.ingest_file(homes[0], spec, path, references=references, batch_rows=batch_rows)
    on_spark = ingest.ingest_file(
        homes[1], spec, path, references=references, batch_rows=batch_rows, spark=spark
    )
    assert _result(on_spark) == _result(local), dataset
    return on_spark


def _assert_same(homes: tuple[Home, Home], datasets: Iterable[str]) -> None:
    local, on_spark = homes
    for name in datasets:
        linked = _rows(ingest.linked_path(local, name))
        assert _rows(ingest.linked_path(on_spark, name)) == linked, name
        drop = ("quarantined_at",)
        quarantined = _rows(ingest.quarantine_path(local, name), drop)
        assert _rows(ingest.quarantine_path(on_spark, name), drop) == quarantined, name
        schema = delta.dataset(ingest.linked_path(local, name)).schema
        assert delta.dataset(ingest.linked_path(on_spark, name)).schema == schema, name
        assert not schema.field("pid").nullable
    drop = ("loaded_at",)
    assert _rows(ingest.sign_in_path(on_spark), drop) == _rows(ingest.sign_in_path(local), drop)
    assert _manifest(on_spark) == _manifest(local)
    assert not list(on_spark.root.glob(".ingest-spark-*")), "the staged rows were not removed"


@pytest.mark.presidio
def test_contract_files_give_the_same_outputs(spark: SparkSession, tmp_path: Path) -> None:
    """Every shipped dataset, bad rows of each kind, and clinic letters de-identified by
    Presidio on Spark's workers with the identifiers of the patients' file."""
    homes = _homes(tmp_path)
    sources = make_sources(homes[0].sources)
    for name in ORDER:
        _ingest_both(spark, homes, name, sources.path(name))
    _assert_same(homes, ORDER)
    letters = _rows(ingest.linked_path(homes[1], "clinic_letters"))
    assert letters, "no letters were written"
    written = " ".join(str(row["letter_text"]) for row in letters)
    for patient in sources.patients:
        assert patient.given not in written
        assert patient.family not in written
    assert sum(int(str(m["rows_quarantined"])) for m in _manifest(homes[1])) > 0
    assert _rows(ingest.sign_in_path(homes[1])), "no sign-in checks were written"


def test_synthesised_files_give_the_same_outputs(spark: SparkSession, tmp_path: Path) -> None:
    homes = _homes(tmp_path)
    synthesise(homes[0].sources, 300, seed=11)
    names = [n for n in ORDER if n != "clinic_letters"]
    for name in names:
        _ingest_both(spark, homes, name, homes[0].sources / f"{name}.csv", batch_rows=997)
    _assert_same(homes, names)


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        ("crlf", lambda text: text.replace("\n", "\r\n")),
        ("many copies", lambda text: text + text.split("\n", 1)[1] * 3),
    ],
)
def test_awkward_event_files_give_the_same_outputs(
    spark: SparkSession, tmp_path: Path, name: str, transform: Callable[[str], str]
) -> None:
    """Quoted newlines, copies in another quoting, bad dates and numbers, Unicode digits
    and spaces, blank lines and wrong field counts (malformed: kept on the driver), a
    literal quote only Python's csv reads, in batches of four records."""
    homes = _homes(tmp_path)
    path = tmp_path / "gp_events.csv"
    path.write_bytes(transform(GP_HEADER + "\n" + "\n".join(_gp_rows()) + "\n").encode())
    result = _ingest_both(spark, homes, "gp_events", path, batch_rows=4)
    _assert_same(homes, ["gp_events"])
    reasons = result.quarantined_by_reason
    assert reasons["malformed_row"] == (3 if name == "crlf" else 12)
    assert reasons["duplicate_row"] == (2 if name == "crlf" else 2 + 3 * 19)


def test_repeated_keys_and_a_single_column_file(spark: SparkSession, tmp_path: Path) -> None:
    homes = _homes(tmp_path)
    sources = make_sources(homes[0].sources)
    lines = sources.path("patients").read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines[1].split(",", 1)
    spaced = f" {first[0][:3]} {first[0][3:6]} {first[0][6:]}," + first[1].replace("2", "\uff12", 1)
    patients = tmp_path / "patients.csv"
    patients.write_text("".join([*lines, "\n", spaced, lines[2]]), encoding="utf-8")
    result = _ingest_both(spark, homes, "patients", patients, batch_rows=3)
    assert result.quarantined_by_reason.get("duplicate_key", 0) >= 1
    opt_out = tmp_path / "national_opt_out.csv"
    opt_out.write_bytes(b'nhs_number\n9434765919\n\n\n943 476 5919\n""\n4010232137\n 4010232137\n')
    _ingest_both(spark, homes, "national_opt_out", opt_out, batch_rows=2)
    _assert_same(homes, ["patients", "national_opt_out"])


def test_a_file_of_malformed_records_only(spark: SparkSession, tmp_path: Path) -> None:
    homes = _homes(tmp_path)
    path = tmp_path / "gp_events.csv"
    path.write_text(GP_HEADER + "\n9434765919,2023-01-01\n\n1,2,3,4,5,6,7\n", encoding="utf-8")
    result = _ingest_both(spark, homes, "gp_events", path)
    assert (result.rows_in, result.rows_written, result.rows_quarantined) == (3, 0, 3)
    _assert_same(homes, ["gp_events"])


# --- each engine and the other's tables ------------------------------------------------


def test_each_engine_appends_to_and_reads_the_others_tables(
    spark: SparkSession, tmp_path: Path
) -> None:
    home = init_home(tmp_path / "h")
    synthesise(home.sources, 200, seed=5)
    events = (home.sources / "gp_events.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    parts = [tmp_path / f"part{i}.csv" for i in range(3)]
    thirds = len(events) // 3
    for index, part in enumerate(parts):
        body = events[1 + index * thirds : 1 + (index + 1) * thirds if index < 2 else None]
        part.write_text(events[0] + "".join(body), encoding="utf-8")
    spec = ingest.load_spec("gp_events")
    first = ingest.ingest_file(home, spec, parts[0])  # local: creates the table
    second = ingest.ingest_file(home, spec, parts[1], spark=spark)  # Spark appends
    third = ingest.ingest_file(home, spec, parts[2])  # local appends after Spark
    assert (first.linked_version, second.linked_version, third.linked_version) == (0, 1, 2)
    target = ingest.linked_path(home, "gp_events")
    total = first.rows_written + second.rows_written + third.rows_written
    assert delta.read(target).num_rows == total
    assert sp.read_delta(spark, target).count() == total
    # Spark's commit carries the file's SHA-256 where the local engine finds it.
    shas = [ingest.commit_source_sha(c) for c in delta.history(target)]
    assert shas[:3] == [first.source_sha256, second.source_sha256, third.source_sha256][::-1]
    # Either engine skips a file the other ingested.
    again = ingest.ingest_file(home, spec, parts[0], spark=spark)
    assert again.skipped
    assert again.rows_written == first.rows_written
    assert ingest.ingest_file(home, spec, parts[1]).skipped
    assert delta.read(target).num_rows == total


def test_a_spark_commit_the_manifest_lacks_is_found_by_either_engine(
    spark: SparkSession, tmp_path: Path
) -> None:
    home = init_home(tmp_path / "h")
    synthesise(home.sources, 60, seed=2)
    spec = ingest.load_spec("admissions")
    path = home.sources / "admissions.csv"
    ingest.ingest_file(home, spec, path, spark=spark)
    # As if the ingest had stopped after its linked commit, before the manifest row.
    shutil.rmtree(ingest.manifest_path(home))  # type: ignore[arg-type]
    for run_on in (None, spark):
        with pytest.raises(StateError, match="an earlier ingest was interrupted"):
            ingest.ingest_file(home, spec, path, spark=run_on)


def test_a_table_with_other_columns_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    synthesise(home.sources, 40, seed=2)
    target = ingest.linked_path(home, "admissions")
    delta.append(target, _other_table())
    with pytest.raises(InputError, match="do not match the existing table linked"):
        ingest.ingest_file(
            home, ingest.load_spec("admissions"), home.sources / "admissions.csv", spark=spark
        )
    assert delta.version(target) == 0
    assert not list(home.root.glob(".ingest-spark-*"))


def _other_table() -> Any:
    import pyarrow as pa

    return pa.table({"pid": pa.array(["x"], pa.string()), "other": pa.array([1], pa.int64())})


# --- keys, values, errors -----------------------------------------------------------------


class _Recorded:
    def __init__(self) -> None:
        self.transforms: list[Any] = []


def test_workers_get_derived_keys_never_the_master_key(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark import cloudpickle

    home = init_home(tmp_path / "h")
    synthesise(home.sources, 40, seed=4)
    recorded = _Recorded()
    original = sp.map_arrow

    def record(frame: Any, transform: Any, schema: Any) -> Any:
        recorded.transforms.append(transform)
        return original(frame, transform, schema)

    monkeypatch.setattr(sp, "map_arrow", record)
    ingest.ingest_file(
        home, ingest.load_spec("patients"), home.sources / "patients.csv", spark=spark
    )
    assert len(recorded.transforms) == 2
    shipped = b"".join(cloudpickle.dumps(t) for t in recorded.transforms)  # type: ignore[no-untyped-call]
    from sde.domain.patient_sign_in import sign_in_key
    from sde.domain.pseudonyms import LINKAGE_INFO, hkdf_sha256

    master = home.master_key()
    assert master not in shipped
    assert hkdf_sha256(master, LINKAGE_INFO) in shipped  # the control: keys are visible here
    assert sign_in_key(master) in shipped


class LeakError(BaseException):
    """Not an Exception: a failure ingest does not hold back as one row's."""


class LeakyDeidentifier:
    """Fails on Spark's workers with the letter's text in the error, as a library might."""

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str:
        raise LeakError(text)


class FussyDeidentifier:
    """Refuses one letter in three (by length) with an ordinary Exception: those rows are
    held back, as the local engine holds them back."""

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str:
        if len(text) % 3 == 0:
            raise ValueError("cannot read this letter")
        return f"[cleared {len(text)}]"


def test_held_back_letters_are_quarantined_alike(spark: SparkSession, tmp_path: Path) -> None:
    from pyspark import cloudpickle

    homes = _homes(tmp_path)
    sources = make_sources(homes[0].sources)
    spec = ingest.load_spec("clinic_letters")
    path = sources.path("clinic_letters")
    references = {"patients": sources.path("patients")}
    local = ingest.ingest_file(
        homes[0], spec, path, deidentifier=FussyDeidentifier(), references=references
    )
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    try:
        on_spark = ingest.ingest_file(
            homes[1],
            spec,
            path,
            deidentifier=FussyDeidentifier(),
            references=references,
            spark=spark,
        )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    assert _result(on_spark) == _result(local)
    assert local.quarantined_by_reason.get("deidentification_failed", 0) >= 2
    assert on_spark.rows_written > 0
    _assert_same(homes, ["clinic_letters"])


def test_a_spark_failure_names_the_stage_never_a_value(
    spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    try:
        home = init_home(tmp_path / "h")
        sources = make_sources(home.sources)
        with sources.path("clinic_letters").open(newline="", encoding="utf-8") as letters:
            # The line of each letter that names its patient ("Re: <NAME>, DOB ...").
            secrets = [
                line
                for row in csv.DictReader(letters)
                for line in row["letter_text"].splitlines()
                if line.startswith("Re: ")
            ]
        assert len(secrets) > 10
        with pytest.raises(SparkStageFailed) as caught:
            ingest.ingest_file(
                home,
                ingest.load_spec("clinic_letters"),
                sources.path("clinic_letters"),
                deidentifier=LeakyDeidentifier(),
                spark=spark,
            )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]
    message = str(caught.value)
    assert "checking, pseudonymising and de-identifying the rows" in message
    assert "ingest of clinic_letters.csv for dataset clinic_letters" in message
    assert f"a Python worker raised {__name__}.LeakError" in message
    assert "Nothing of this file was committed" in message
    assert not [secret for secret in secrets if secret in message]
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    # the control: Spark's own message quotes a letter
    assert [secret for secret in secrets if secret in str(caught.value.__context__)]
    out, err = capfd.readouterr()
    assert not [secret for secret in secrets if secret in out + err]
    assert not delta.exists(ingest.linked_path(home, "clinic_letters"))
    assert ingest.ingest_manifest(home) == []
    assert not list(home.root.glob(".ingest-spark-*")), "the staged rows were not removed"


def test_staged_rows_are_readable_by_their_owner_only(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = init_home(tmp_path / "h")
    synthesise(home.sources, 30, seed=6)
    modes: list[int] = []
    original = engine._stage_raw

    def spy(path: Path, header: Any, folder: Path, batch_rows: int, bar: Any) -> Any:
        staged = original(path, header, folder, batch_rows, bar)
        modes.append(stat.S_IMODE(os.stat(folder.parent).st_mode))
        assert list(folder.glob("part-*.parquet"))
        return staged

    monkeypatch.setattr(engine, "_stage_raw", spy)
    ingest.ingest_file(home, ingest.load_spec("deaths"), home.sources / "deaths.csv", spark=spark)
    assert modes == [0o700]
    assert not list(home.root.glob(".ingest-spark-*"))


def test_a_lake_on_azure_is_refused(spark: SparkSession, tmp_path: Path) -> None:
    """Only S3 is wired for Spark (tests/integration/test_spark_s3.py); Azure is refused,
    naming the connector it lacks, before the file is read."""
    home = init_home(tmp_path / "h")
    synthesise(home.sources, 10, seed=1)

    class Remote:
        lake_is_remote = True
        lake = RemoteTable("az://lake/prod", {"AZURE_STORAGE_ACCOUNT_KEY": "k3y"})

    with pytest.raises(InputError, match="hadoop-azure") as refused:
        engine.ingest_file_spark(
            spark,
            Remote(),  # type: ignore[arg-type]
            ingest.load_spec("deaths"),
            home.sources / "deaths.csv",
            ["nhs_number"],
        )
    assert "use --engine local" in str(refused.value)
    assert "k3y" not in str(refused.value)


# --- the command line (a run on Spark: tests/e2e/test_cli_spark.py) ----------------------


def test_cli_refuses_spark_options_with_the_local_engine(tmp_path: Path) -> None:
    home = init_home(tmp_path / "h")
    args = ["ingest", "--all", "--actor", "olu", "--home", str(home.root)]
    result = CliRunner().invoke(main, [*args, "--spark-memory", "2g"])
    assert result.exit_code == 2
    assert "go with --engine spark" in result.output
