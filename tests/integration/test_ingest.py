"""Ingest end to end on real Delta tables: counts, quarantine, manifest, re-ingest, linkage,
and that nothing identifying reaches the linked zone."""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sde.adapters import delta
from sde.domain.datasets import Pii
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError, NotFound, StateError
from sde.services import ingest
from sde.services.audit import MemoryAuditLog
from sde.services.home import Home, init_home
from tests.integration.ingest_fixtures import (
    PATIENTS_HEADER,
    Sources,
    make_sources,
    spaced,
    write_csv,
)

pytestmark = [pytest.mark.delta, pytest.mark.presidio]

CONTRACT = (
    "admissions",
    "clinic_letters",
    "deaths",
    "gp_events",
    "national_opt_out",
    "patients",
    "type1_opt_out",
)


@dataclass
class Ingested:
    home: Home
    sources: Sources
    results: dict[str, ingest.IngestResult]
    audit: MemoryAuditLog


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    home = init_home(tmp_path_factory.mktemp("ingest") / "h")
    sources = make_sources(home.sources)
    audit = MemoryAuditLog()
    results = {r.dataset: r for r in ingest.ingest_all(home, audit=audit)}
    return Ingested(home, sources, results, audit)


def fresh_home(tmp_path: Path) -> tuple[Home, Sources]:
    home = init_home(tmp_path / "h")
    return home, make_sources(home.sources)


# --- specs ----------------------------------------------------------------------------


def test_every_contract_dataset_has_a_shipped_spec() -> None:
    assert tuple(ingest.shipped_datasets()) == CONTRACT
    for name in CONTRACT:
        spec = ingest.load_spec(name)
        assert spec.name == name
        assert spec.identifier.name == "nhs_number"


def test_unknown_dataset_is_not_found() -> None:
    with pytest.raises(NotFound, match="no dataset spec named 'pharmacy'"):
        ingest.load_spec("pharmacy")


def test_custom_spec_file_and_invalid_yaml(tmp_path: Path) -> None:
    good = tmp_path / "optouts.yaml"
    good.write_text("name: optouts\norigin: opt_out\ncolumns:\n  nhs: {role: identifier}\n")
    assert ingest.load_spec_file(good).identifier.name == "nhs"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncolumns: [unclosed\n")
    with pytest.raises(InputError, match=r"bad\.yaml is not valid YAML at line"):
        ingest.load_spec_file(bad)
    with pytest.raises(InputError, match="cannot read dataset spec"):
        ingest.load_spec_file(tmp_path / "absent.yaml")


# --- counts, quarantine, manifest -----------------------------------------------------


def test_counts_reconcile_with_what_was_put_in(ingested: Ingested) -> None:
    assert set(ingested.results) == set(CONTRACT)
    for name, result in ingested.results.items():
        expected = ingested.sources.expected.get(name, Counter())
        assert result.rows_in == ingested.sources.rows[name], name
        assert result.rows_quarantined == sum(expected.values()), name
        assert dict(result.quarantined_by_reason) == dict(expected), name
        assert result.rows_in == result.rows_written + result.rows_quarantined
        assert not result.skipped
        linked = delta.read(ingest.linked_path(ingested.home, name))
        assert linked.num_rows == result.rows_written, name
        assert result.linked_version == delta.version(ingest.linked_path(ingested.home, name))


def test_bad_rows_land_in_quarantine_with_reasons(ingested: Ingested) -> None:
    home = ingested.home
    for name, expected in ingested.sources.expected.items():
        table = delta.read(ingest.quarantine_path(home, name))
        rows = table.to_pylist()
        assert Counter(r["reason_code"] for r in rows) == expected, name
        for r in rows:
            assert r["source_file"] == f"{name}.csv"
            assert r["source_sha256"] == ingested.results[name].source_sha256
            assert 1 <= r["row_number"] <= ingested.sources.rows[name]
            raw = json.loads(r["raw_row"])
            assert "'" in r["reason"] or "row" in r["reason"]
            # A reason names the column and rule, never the value.
            values = raw.values() if isinstance(raw, dict) else raw
            for value in values:
                if len(value) >= 4:
                    assert value not in r["reason"]

    patients = {r["row_number"]: r for r in delta.read(home.quarantine / "patients").to_pylist()}
    first_bad = len(ingested.sources.patients) + 1
    assert patients[first_bad]["reason_code"] == "invalid_nhs_number"
    assert json.loads(patients[first_bad]["raw_row"])["nhs_number"]  # the raw row is kept
    assert "nhs_number" in patients[first_bad]["reason"]
    assert patients[first_bad + 4]["reason"] == "the row is an exact copy of data row 4"
    assert patients[first_bad + 5]["reason"] == "key (nhs_number) repeats data row 5"


def test_manifest_records_each_file_once(ingested: Ingested) -> None:
    rows = ingest.ingest_manifest(ingested.home)
    assert sorted(r["dataset"] for r in rows) == sorted(CONTRACT)
    for row in rows:
        result = ingested.results[str(row["dataset"])]
        assert row["source_file"] == f"{row['dataset']}.csv"
        assert row["source_sha256"] == ingest.file_sha256(ingested.sources.path(result.dataset))
        assert row["rows_in"] == result.rows_in
        assert row["rows_written"] == result.rows_written
        assert row["rows_quarantined"] == result.rows_quarantined
        assert json.loads(str(row["quarantined_by_reason"])) == result.quarantined_by_reason
        assert row["linked_version"] == result.linked_version
        assert row["quarantine_version"] == result.quarantine_version
        assert row["ingested_by"] == "system"
        assert isinstance(row["ingested_at"], dt.datetime)
        assert row["ingested_at"].utcoffset() == dt.timedelta(0)


def test_audit_records_counts_and_checksums(ingested: Ingested) -> None:
    events = ingested.audit.events
    assert [e.subject for e in events] == list(CONTRACT)
    assert ingested.audit.verify().intact
    for event in events:
        result = ingested.results[event.subject]
        assert event.action == "ingest"
        assert event.actor == "system"
        assert event.details["sha256"] == result.source_sha256
        assert event.details["rows_in"] == result.rows_in
        assert event.details["rows_quarantined"] == result.rows_quarantined
        assert event.details["linked_version"] == result.linked_version


def test_reingesting_the_same_file_adds_nothing(ingested: Ingested) -> None:
    home = ingested.home
    before = {
        name: (
            delta.version(ingest.linked_path(home, name)),
            delta.version(ingest.quarantine_path(home, name)),
        )
        for name in CONTRACT
    }
    manifest_version = delta.version(ingest.manifest_path(home))
    audit = MemoryAuditLog()
    again = ingest.ingest_file(
        home, ingest.load_spec("patients"), ingested.sources.path("patients"), audit=audit
    )
    assert again.skipped
    assert again.rows_in == ingested.results["patients"].rows_in
    assert again.quarantined_by_reason == ingested.results["patients"].quarantined_by_reason
    assert [e.action for e in audit.events] == ["ingest.skipped"]
    for result in ingest.ingest_all(home):
        assert result.skipped
    after = {
        name: (
            delta.version(ingest.linked_path(home, name)),
            delta.version(ingest.quarantine_path(home, name)),
        )
        for name in CONTRACT
    }
    assert after == before
    assert delta.version(ingest.manifest_path(home)) == manifest_version


def test_a_changed_delivery_is_ingested_and_appended(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    spec = ingest.load_spec("type1_opt_out")
    first = ingest.ingest_file(home, spec, sources.path("type1_opt_out"))
    later = tmp_path / "type1_opt_out_2.csv"
    write_csv(later, ["nhs_number", "gp_practice"], [[sources.patients[9].nhs, "B86012"]])
    second = ingest.ingest_file(home, spec, later)
    assert not second.skipped
    assert second.linked_version == (first.linked_version or 0) + 1
    table = delta.read(ingest.linked_path(home, "type1_opt_out"))
    assert table.num_rows == first.rows_written + 1
    assert len(ingest.ingest_manifest(home)) == 2


# --- linked output ----------------------------------------------------------------------


def test_linked_tables_have_pid_first_and_proper_types(ingested: Ingested) -> None:
    home = ingested.home
    patients = delta.read(ingest.linked_path(home, "patients")).schema
    assert patients.names == [
        "pid",
        "sex",
        "year_of_birth",
        "postcode_district",
        "gp_practice",
        "ethnicity",
    ]
    assert patients.field("pid").type == pa.string()
    assert not patients.field("pid").nullable
    assert patients.field("year_of_birth").type == pa.int32()
    events = delta.read(ingest.linked_path(home, "gp_events")).schema
    assert events.names == ["pid", "event_date", "snomed_code", "term", "value", "unit"]
    assert events.field("event_date").type == pa.date32()
    assert events.field("value").type == pa.float64()
    admissions = delta.read(ingest.linked_path(home, "admissions")).schema
    assert "hospital_number" not in admissions.names
    assert admissions.field("discharge_date").type == pa.date32()
    for register in ("national_opt_out", "type1_opt_out"):
        assert delta.read(ingest.linked_path(home, register)).schema.names == ["pid"]


def test_pid_is_the_linkage_pseudonym_and_links_datasets(ingested: Ingested) -> None:
    home = ingested.home
    link = LinkagePseudonymiser(home.master_key())
    patients = {p.nhs: p for p in ingested.sources.patients}
    expected = {link.pid(nhs): p for nhs, p in patients.items()}
    rows = delta.read(ingest.linked_path(home, "patients")).to_pylist()
    assert {r["pid"] for r in rows} == set(expected)
    for r in rows:
        p = expected[r["pid"]]
        assert r["year_of_birth"] == p.dob.year
        assert r["postcode_district"] == p.postcode.split()[0]
        assert r["gp_practice"] == p.practice
    # The number written with spaces links to the same pid as without.
    spaced_patient = ingested.sources.patients[0]
    assert link.pid(spaced(spaced_patient.nhs)) in expected
    for name in ("gp_events", "admissions", "deaths", "clinic_letters", "national_opt_out"):
        pids = set(delta.read(ingest.linked_path(home, name), columns=["pid"])["pid"].to_pylist())
        assert pids
        assert pids <= set(expected), name
    opted_out = set(delta.read(home.linked / "national_opt_out")["pid"].to_pylist())
    assert opted_out == {link.pid(p.nhs) for p in ingested.sources.patients[1:4]}


def test_free_text_is_deidentified_and_clinical_content_survives(ingested: Ingested) -> None:
    letters = delta.read(ingest.linked_path(ingested.home, "clinic_letters")).to_pylist()
    assert len(letters) == ingested.results["clinic_letters"].rows_written > 0
    for letter in letters:
        text = letter["letter_text"]
        for clinical in ("BP 132/84", "HbA1c 58 mmol/mol", "metformin 500 mg", "E11.9"):
            assert clinical in text
        for placeholder in ("<PERSON>", "<NHS_NUMBER>", "<DATE>", "<PHONE>", "<EMAIL>"):
            assert placeholder in text
        assert letter["letter_date"] == dt.date(2024, 3, 12)


def _tables(root: Path) -> Iterator[Path]:
    for log in sorted(root.rglob("_delta_log")):
        yield log.parent


def _string_cells(table: pa.Table) -> Iterable[str]:
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if v is not None)


def _leaks(text: str, secrets: dict[str, set[str]]) -> list[str]:
    """Kinds of identifier found in ``text`` (the kinds only: never print a value)."""
    lowered = text.lower()
    digits = re.sub(r"[\s\-.()+]", "", text)
    found = []
    for kind in ("name", "address", "postcode", "email", "dob"):
        if any(secret in lowered for secret in secrets[kind]):
            found.append(kind)
    if any(nhs in digits for nhs in secrets["nhs"]):
        found.append("nhs")
    if any(phone in digits for phone in secrets["phone"]):
        found.append("phone")
    return found


def test_nothing_identifying_reaches_the_linked_zone(ingested: Ingested) -> None:
    home = ingested.home
    secrets = ingested.sources.secrets()
    # The scan must be able to fail: the identifiers are in the source files.
    assert set(_leaks(ingested.sources.path("patients").read_text(), secrets)) == {
        "name",
        "address",
        "postcode",
        "email",
        "dob",
        "nhs",
        "phone",
    }
    tables = list(_tables(home.linked)) + list(_tables(home.manifests))
    # the datasets, the ingest manifest and the patients' sign-in checks
    assert sorted(t.name for t in tables) == sorted(
        [*CONTRACT, ingest.MANIFEST_TABLE, ingest.SIGN_IN_TABLE]
    )
    for table_path in tables:
        for cell in _string_cells(delta.read(table_path)):
            assert not _leaks(cell, secrets), table_path.name
        for file in table_path.rglob("*"):
            if file.is_file():
                raw = file.read_bytes().decode("latin-1")
                assert not _leaks(raw, secrets), f"{table_path.name}/{file.name}"


def test_no_identifier_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home, sources = fresh_home(tmp_path)
    caplog.set_level(logging.DEBUG)
    for name in ("patients", "clinic_letters"):
        ingest.ingest_file(home, ingest.load_spec(name), sources.path(name), progress=True)
    assert caplog.records  # Presidio and delta-rs do log at this level
    assert not _leaks(caplog.text, sources.secrets())


def test_linked_tables_are_append_only(ingested: Ingested) -> None:
    table = DeltaTable(str(ingest.linked_path(ingested.home, "patients")))
    with pytest.raises(Exception, match="append-only"):
        table.delete()


# --- refusals and failures --------------------------------------------------------------


def test_an_unclassified_column_is_refused_naming_it(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "patients_extra.csv"
    p = sources.patients[0]
    write_csv(path, [*PATIENTS_HEADER, "nickname"], [[*p.row(), "Relly"]])
    with pytest.raises(InputError) as err:
        ingest.ingest_file(home, ingest.load_spec("patients"), path)
    assert "'nickname'" in str(err.value)
    assert "Relly" not in str(err.value)
    assert not delta.exists(ingest.linked_path(home, "patients"))
    assert ingest.ingest_manifest(home) == []


def test_a_spec_column_missing_from_the_file_is_refused(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "patients_short.csv"
    write_csv(path, PATIENTS_HEADER[:-1], [sources.patients[0].row()[:-1]])
    with pytest.raises(InputError, match=r"'ethnicity'.*missing from the file"):
        ingest.ingest_file(home, ingest.load_spec("patients"), path)


def test_empty_and_absent_files_are_refused(tmp_path: Path) -> None:
    home, _ = fresh_home(tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"empty\.csv is empty"):
        ingest.ingest_file(home, ingest.load_spec("deaths"), empty)
    with pytest.raises(NotFound):
        ingest.ingest_file(home, ingest.load_spec("deaths"), tmp_path / "absent.csv")


def test_a_header_only_file_gives_an_empty_table(tmp_path: Path) -> None:
    home, _ = fresh_home(tmp_path)
    path = tmp_path / "deaths.csv"
    write_csv(path, ["nhs_number", "date_of_death", "underlying_cause", "place_of_death"], [])
    result = ingest.ingest_file(home, ingest.load_spec("deaths"), path)
    assert (result.rows_in, result.rows_written, result.rows_quarantined) == (0, 0, 0)
    assert delta.read(ingest.linked_path(home, "deaths")).num_rows == 0


def test_rows_with_the_wrong_number_of_fields_are_quarantined(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "deaths.csv"
    p = sources.patients[0]
    with path.open("w", newline="") as f:
        f.write("nhs_number,date_of_death,underlying_cause,place_of_death\n")
        f.write(f"{p.nhs},2023-01-01,I21.9,home\n")
        f.write(f"{sources.patients[1].nhs},2023-01-01,I21.9\n")
        f.write("\n")
    result = ingest.ingest_file(home, ingest.load_spec("deaths"), path)
    assert result.rows_in == 3
    assert result.rows_written == 1
    assert result.quarantined_by_reason == {"malformed_row": 2}
    reasons = [r["reason"] for r in delta.read(home.quarantine / "deaths").to_pylist()]
    assert "the row has 3 field(s); the header has 4" in reasons


def test_a_broken_file_writes_nothing(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "gp_events.csv"
    good = [[p.nhs, "2020-01-01", "27113001", "Body weight", "70", "kg"] for p in sources.patients]
    write_csv(path, ["nhs_number", "event_date", "snomed_code", "term", "value", "unit"], good)
    with path.open("a", newline="") as f:
        f.write(f'{sources.patients[0].nhs},2020-01-01,"27113001"x,Body weight,70,kg\n')
    with pytest.raises(InputError, match="not valid CSV near line"):
        ingest.ingest_file(home, ingest.load_spec("gp_events"), path, batch_rows=7)
    assert not delta.exists(ingest.linked_path(home, "gp_events"))
    assert not delta.exists(ingest.quarantine_path(home, "gp_events"))
    assert ingest.ingest_manifest(home) == []


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "deaths.csv"
    path.write_bytes(
        b"nhs_number,date_of_death,underlying_cause,place_of_death\n"
        + f"{sources.patients[0].nhs},2023-01-01,I21.9,home\n".encode()
        + b"\xff\xfe,2023-01-01,I21.9,home\n"
    )
    with pytest.raises(InputError, match="is not UTF-8"):
        ingest.ingest_file(home, ingest.load_spec("deaths"), path)
    assert not delta.exists(ingest.linked_path(home, "deaths"))


class ExplodingDeidentifier:
    """Replaces every letter with a fixed text, except that it fails on one."""

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str:
        if "EXPLODE" in text:
            raise ValueError("analyzer crashed")
        return "cleared"


def test_free_text_that_cannot_be_deidentified_is_quarantined_not_written(
    tmp_path: Path,
) -> None:
    home, sources = fresh_home(tmp_path)
    path = tmp_path / "clinic_letters.csv"
    rows = [
        [p.nhs, "2024-01-01", "diabetes", f"letter {i}"] for i, p in enumerate(sources.patients)
    ]
    rows[3][3] = "EXPLODE for Aurelia"
    write_csv(path, ["nhs_number", "letter_date", "specialty", "letter_text"], rows)
    result = ingest.ingest_file(
        home, ingest.load_spec("clinic_letters"), path, deidentifier=ExplodingDeidentifier()
    )
    assert result.quarantined_by_reason == {"deidentification_failed": 1}
    assert result.rows_written == len(rows) - 1
    texts = delta.read(ingest.linked_path(home, "clinic_letters"))["letter_text"].to_pylist()
    assert set(texts) == {"cleared"}
    (held,) = delta.read(home.quarantine / "clinic_letters").to_pylist()
    assert held["row_number"] == 4
    assert "analyzer crashed" not in held["reason"]


def test_letters_need_the_file_their_known_identifiers_come_from(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    moved = tmp_path / "elsewhere.csv"
    shutil.move(sources.path("patients"), moved)
    spec = ingest.load_spec("clinic_letters")
    with pytest.raises(InputError, match="identifiers held in patients"):
        ingest.ingest_file(home, spec, sources.path("clinic_letters"))
    result = ingest.ingest_file(
        home, spec, sources.path("clinic_letters"), references={"patients": moved}
    )
    assert result.rows_written > 0


def test_a_reference_row_that_cannot_be_read_stops_the_letters(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    with sources.path("patients").open("a") as f:
        f.write("9434765919,too,few\n")
    spec = ingest.load_spec("clinic_letters")
    with pytest.raises(InputError, match=r"data row .* has 3 fields") as err:
        ingest.ingest_file(home, spec, sources.path("clinic_letters"))
    assert "9434765919" not in str(err.value)
    assert not (home.linked / "clinic_letters").exists()


def test_counts_that_do_not_add_up_stop_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, sources = fresh_home(tmp_path)
    # A bug that loses quarantined rows: the invariant must catch it.
    monkeypatch.setattr(ingest._Run, "_quarantine_rows", lambda self, rejected, raw: None)
    with pytest.raises(RuntimeError, match=r"rows in \(47\) is not rows written \(40\)"):
        ingest.ingest_file(home, ingest.load_spec("patients"), sources.path("patients"))
    assert not delta.exists(ingest.linked_path(home, "patients"))
    assert ingest.ingest_manifest(home) == []


def test_an_interrupted_ingest_is_detected(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    spec = ingest.load_spec("deaths")
    ingest.ingest_file(home, spec, sources.path("deaths"))
    shutil.rmtree(ingest.manifest_path(home))  # as if the process died before the manifest
    with pytest.raises(StateError, match="interrupted"):
        ingest.ingest_file(home, spec, sources.path("deaths"))


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, sources = fresh_home(tmp_path)
    ingest.ingest_file(home, ingest.load_spec("deaths"), sources.path("deaths"), progress=True)
    captured = capsys.readouterr()
    assert "ingest deaths" in captured.err
    assert captured.out == ""
    ingest.ingest_file(
        home, ingest.load_spec("gp_events"), sources.path("gp_events"), progress=False
    )
    assert capsys.readouterr().err == ""


def test_quoted_newlines_in_free_text_are_one_row(tmp_path: Path) -> None:
    home, sources = fresh_home(tmp_path)
    path = sources.path("clinic_letters")
    with path.open(newline="") as f:
        records = list(csv.reader(f))
    assert any("\n" in r[3] for r in records[1:])
    result = ingest.ingest_file(home, ingest.load_spec("clinic_letters"), path)
    assert result.rows_in == len(records) - 1


@pytest.mark.slow
def test_demo_scale_files_ingest_completely(tmp_path: Path) -> None:
    """Speed is measured by bench/ingest_speed.py, not asserted here."""
    home = init_home(tmp_path / "h")
    sources = make_sources(home.sources, n_patients=10_000, seed=11)
    results = ingest.ingest_all(home)
    assert sum(r.rows_in for r in results) == sum(sources.rows.values())
