"""Carrying patients' own choices across a rotation of the master key: two real homes
(``init_home``, each its own random key), real provider files ingested under each key,
real Delta tables and the real control database. No NHS number or pid is printed, stored
in the audit log, or written to the new home by the old key."""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from sde.adapters import delta
from sde.cli import keys as keys_cli  # noqa: F401  (registers `sde keys` on main)
from sde.cli import main
from sde.domain import nhs_number
from sde.domain.keys import key_fingerprint
from sde.domain.optouts import ExclusionTerms
from sde.domain.pseudonyms import LinkagePseudonymiser
from sde.errors import InputError, NotFound, StateError
from sde.services.home import Home, init_home, open_home
from sde.services.ingest import ingest_all
from sde.services.key_rotation import CARRIED_OVER, CarryResult, carry_choices
from sde.services.optouts import (
    choices_path,
    exclusions,
    import_choices,
    record_choice,
    standing_opt_outs,
)
from sde.services.patient import audit_subject
from sde.services.patient_page import SignedInPatient, change_choice
from sde.services.wiring import control_plane

pytestmark = [pytest.mark.delta, pytest.mark.sql]


def valid_numbers(count: int) -> list[str]:
    out: list[str] = []
    stem = 500000000
    while len(out) < count:
        number = nhs_number.complete(str(stem))
        if number is not None:
            out.append(number)
        stem += 13
    return out


NHS = valid_numbers(9)
# The sources: deaths of patients 0-5 (and a row with an invalid number), patient 6 on the
# national opt-out list, patient 5 with a type 1 opt-out. Patient 8 is in no source.
IN_SOURCES = range(7)
NOT_IN_SOURCES = 8
INVALID = "1234567890"
CHOICES_HEADER = "nhs_number,scope,target,choice,recorded_at"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TERMS = ExclusionTerms(
    project_id="alpha",
    purpose="research",
    national_opt_out_applies=True,
    sponsor_type="commercial",
    sponsor_organisation="Acme Pharma",
    origin="registry",
)


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def write_sources(folder: Path) -> None:
    deaths = [f"{NHS[i]},2025-0{i + 1}-15,I21.9,hospital" for i in range(6)]
    write(
        folder / "deaths.csv",
        "nhs_number,date_of_death,underlying_cause,place_of_death",
        [*deaths, f"{INVALID},2025-01-01,I21.9,home"],
    )
    write(folder / "national_opt_out.csv", "nhs_number", [NHS[6]])
    write(folder / "type1_opt_out.csv", "nhs_number,gp_practice", [f"{NHS[5]},A81001"])


def pid(home: Home, number: str) -> str:
    return LinkagePseudonymiser(home.master_key()).pid(number)


def rows(home: Home) -> list[dict[str, object]]:
    table: list[dict[str, object]] = delta.read(choices_path(home)).to_pylist()
    return table


def as_key(row: dict[str, object]) -> tuple[tuple[str, str], ...]:
    """A row as a sortable, hashable value (every column)."""
    return tuple(sorted((name, str(value)) for name, value in row.items()))


def same_rows(a: list[dict[str, object]], b: list[dict[str, object]]) -> bool:
    return sorted(map(as_key, a)) == sorted(map(as_key, b))


@dataclass
class Pair:
    old: Home
    new: Home
    choices_file: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    """The old home with choices of every kind; the new home, with a new key, rebuilt from
    the same sources as step 6 of the procedure says (registers, choices file, datasets)."""
    base = tmp_path_factory.mktemp("rotation")
    old = init_home(base / "old")
    write_sources(old.sources)
    ingest_all(old, actor="op")
    choices_file = write(
        base / "choices.csv",
        CHOICES_HEADER,
        [f"{NHS[2]},commercial,,opt_out,2025-06-01", f"{NHS[3]},research,,opt_out,2025-06-01"],
    )
    # Named "patient page" on purpose: the source column is free text and does not decide.
    import_choices(old, choices_file, actor="op", source="patient page", now=T0)
    record_choice(old, NHS[0], "research", actor="olu", recorded_at="2025-09-01", now=T0)
    record_choice(old, NHS[0], "organisation", "Acme Pharma", actor="olu", now=T0)
    record_choice(
        old, NHS[0], "organisation", "Acme Pharma", opt_in=True, actor="olu",
        now=T0 + dt.timedelta(days=1),
    )  # fmt: skip
    record_choice(old, NHS[NOT_IN_SOURCES], "research", actor="olu", now=T0)
    with control_plane(old) as store:
        patient_pid = pid(old, NHS[1])
        patient = SignedInPatient(patient_pid, audit_subject(old.master_key(), patient_pid))
        change_choice(old, store, patient, "commercial", None, opt_in=False, now=T0)

    new = init_home(base / "new")
    write_sources(new.sources)
    ingest_all(new, actor="op")
    import_choices(new, choices_file, actor="op", source="patient page")
    return Pair(old, new, choices_file)


@pytest.fixture
def pair(built: Pair, tmp_path: Path) -> Pair:
    """A fresh copy of both homes for each test (keys, lakes and databases included)."""
    old = open_home(Path(shutil.copytree(built.old.root, tmp_path / "old")))
    new = open_home(Path(shutil.copytree(built.new.root, tmp_path / "new")))
    return Pair(old, new, built.choices_file)


def carry(pair: Pair) -> CarryResult:
    with control_plane(pair.new) as store:
        return carry_choices(pair.old, pair.new, actor="olu", audit=store.audit)


def single_choices(table: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in table if r["line"] == 0]


def test_page_and_operator_choices_arrive_under_the_new_pid_unchanged(pair: Pair) -> None:
    old_rows = single_choices(rows(pair.old))
    assert len(old_rows) == 5  # 3 of patient 0, 1 of patient 1 (the page), 1 of patient 8
    before = rows(pair.new)

    result = carry(pair)

    after = rows(pair.new)
    added = list((Counter(map(as_key, after)) - Counter(map(as_key, before))).elements())
    assert len(after) == len(before) + len(added)
    old_to_new = {pid(pair.old, n): pid(pair.new, n) for n in NHS}
    expected = [
        {**r, "pid": old_to_new[str(r["pid"])]}
        for r in old_rows
        if r["pid"] != pid(pair.old, NHS[NOT_IN_SOURCES])
    ]
    assert sorted(added) == sorted(map(as_key, expected))
    assert {r["source"] for r in expected} == {"operator olu", "patient page"}
    assert {r["pid"] for r in expected} == {pid(pair.new, NHS[0]), pid(pair.new, NHS[1])}
    # Nothing keyed by an old pid reaches the new table.
    old_pids = {pid(pair.old, n) for n in NHS}
    assert not old_pids & {r["pid"] for r in after}
    assert result.carried == 4
    assert result.version == delta.version(choices_path(pair.new))


def test_file_imported_and_unmatched_choices_are_not_carried(pair: Pair) -> None:
    result = carry(pair)
    after = rows(pair.new)
    # The file's two choices: once each, from the new home's own import (line 2, 3).
    for number in (NHS[2], NHS[3]):
        mine = [r for r in after if r["pid"] == pid(pair.new, number)]
        assert [r["line"] for r in mine] == [2 if number == NHS[2] else 3]
    assert result.file_imported == 2
    # Patient 8 is in no source file: counted, not carried under any pid.
    assert result.unmatched == 1
    assert result.unmatched_patients == 1
    assert pid(pair.new, NHS[NOT_IN_SOURCES]) not in {r["pid"] for r in after}
    assert len(after) == 2 + 4


def test_counts_reconcile_and_a_second_run_adds_nothing(pair: Pair) -> None:
    first = carry(pair)
    assert (first.considered, first.carried, first.already_present, first.unmatched) == (
        5,
        4,
        0,
        1,
    )
    assert first.old_choices == first.considered + first.file_imported == 7
    assert first.source_files == ("deaths.csv", "national_opt_out.csv", "type1_opt_out.csv")
    assert (first.rows_read, first.rows_without_valid_number) == (9, 1)
    assert first.patients_in_sources == len(IN_SOURCES)
    table_after_first = rows(pair.new)

    second = carry(pair)

    assert (second.considered, second.carried, second.already_present, second.unmatched) == (
        5,
        0,
        4,
        1,
    )
    assert same_rows(rows(pair.new), table_after_first)
    assert second.version == first.version


def test_the_carried_opt_outs_are_applied_by_the_next_extract(pair: Pair) -> None:
    patient_0, patient_1 = pid(pair.new, NHS[0]), pid(pair.new, NHS[1])
    before = exclusions(pair.new, TERMS)
    assert patient_0 not in before.pids("choice:research")
    assert patient_1 not in before.pids("choice:commercial")

    carry(pair)

    after = exclusions(pair.new, TERMS)
    assert patient_0 in after.pids("choice:research")
    assert patient_1 in after.pids("choice:commercial")
    excluded = set(after.excluded().to_pylist())
    assert {patient_0, patient_1} <= excluded
    # Patient 0 withdrew the organisation opt-out later: still withdrawn after the carry.
    standing = standing_opt_outs(pair.new).to_pylist()
    assert {"pid": patient_0, "scope": "organisation", "target": "Acme Pharma"} not in standing
    assert {"pid": patient_0, "scope": "research", "target": ""} in standing


def test_the_audit_event_holds_counts_and_fingerprints_and_no_patient_value(
    pair: Pair,
) -> None:
    result = carry(pair)
    with control_plane(pair.new) as store:
        events = store.audit.events()
    carried = [e for e in events if e.action == CARRIED_OVER]
    assert len(carried) == 1
    event = carried[0]
    assert (event.actor, event.subject) == ("olu", "opt_out_choices")
    assert event.details == result.details()
    assert event.details["old_key_sha256"] == key_fingerprint(pair.old.master_key())
    assert event.details["new_key_sha256"] == key_fingerprint(pair.new.master_key())
    assert (event.details["carried"], event.details["unmatched"]) == (4, 1)
    # Nothing of a patient in the whole control database of either home.
    secrets = [*NHS, INVALID]
    secrets += [pid(h, n) for h in (pair.old, pair.new) for n in NHS]
    secrets += [pair.old.master_key().hex(), pair.new.master_key().hex()]
    for home, holds_the_event in ((pair.old, False), (pair.new, True)):
        with sqlite3.connect(home.root / "control.db") as db:
            dump = "\n".join(db.iterdump())
        assert (CARRIED_OVER in dump) is holds_the_event
        leaked = [i for i, s in enumerate(secrets) if s in dump]
        assert not leaked, f"patient values or keys (indexes {leaked}) in {home.root.name}"


def test_no_table_of_the_new_lake_holds_an_old_pid(pair: Pair) -> None:
    carry(pair)
    old_pids = {pid(pair.old, n) for n in NHS}
    assert isinstance(pair.new.linked, Path)
    tables = [p for p in pair.new.linked.iterdir() if (p / "_delta_log").is_dir()]
    assert {p.name for p in tables} >= {"deaths", "opt_out_choices", "national_opt_out"}
    for table in tables:
        data = delta.read(table)
        for name in data.column_names:
            if pa.types.is_string(data.schema.field(name).type):
                values = set(data.column(name).to_pylist())
                assert not values & old_pids, f"an old pid in {table.name}.{name}"


def test_refusals_name_the_problem_and_write_nothing(pair: Pair, tmp_path: Path) -> None:
    before = rows(pair.new)
    with control_plane(pair.new) as store:
        audit_before = store.audit.count()

    same_key = open_home(pair.old.root, key_override=pair.new.master_key())
    with pytest.raises(InputError, match="same master key"):
        carry(Pair(same_key, pair.new, pair.choices_file))

    same_table = open_home(pair.new.root, key_override=pair.old.master_key())
    with pytest.raises(InputError, match="share one choices table"):
        carry(Pair(same_table, pair.new, pair.choices_file))

    for source in pair.new.sources.iterdir():
        shutil.move(source, tmp_path / source.name)
    with pytest.raises(InputError, match="no provider files"):
        carry(pair)
    for source in tmp_path.glob("*.csv"):
        shutil.move(source, pair.new.sources / source.name)

    empty = init_home(tmp_path / "empty")
    with pytest.raises(NotFound, match="old home has no linked/opt_out_choices"):
        carry(Pair(empty, pair.new, pair.choices_file))

    # A wrong old key (every choice would be unmatched) is refused, not counted.
    wrong_old = open_home(pair.old.root, key_override=empty.master_key())
    with pytest.raises(StateError, match="old master key does not match the old home's lake"):
        carry(Pair(wrong_old, pair.new, pair.choices_file))

    # A new key other than the one the new lake was ingested with: refused too.
    wrong_new = open_home(pair.new.root, key_override=empty.master_key())
    with pytest.raises(StateError, match="new master key does not match the new home's lake"):
        carry(Pair(pair.old, wrong_new, pair.choices_file))

    # A new lake where the sources were never ingested cannot check the new key.
    fresh = init_home(tmp_path / "fresh")
    write_sources(fresh.sources)
    with pytest.raises(StateError, match="ingest the sources under the new key first"):
        carry(Pair(pair.old, fresh, pair.choices_file))

    assert same_rows(rows(pair.new), before)
    with control_plane(pair.new) as store:
        assert store.audit.count() == audit_before


# --- the command line --------------------------------------------------------------------


def run(*args: str) -> tuple[int, str]:
    result = CliRunner(env={"SDE_MASTER_KEY": None, "SDE_USER": None}).invoke(main, list(args))
    return result.exit_code, result.stdout + result.stderr


def patient_values(pair: Pair) -> list[str]:
    """Every NHS number of the test and its pid under either key."""
    return [*NHS, *(pid(h, n) for h in (pair.old, pair.new) for n in NHS)]


def test_cli_fingerprint_and_carry_choices(pair: Pair, tmp_path: Path) -> None:
    old_key, new_key = pair.old.master_key(), pair.new.master_key()
    values = patient_values(pair)
    code, out = run("keys", "fingerprint", "--home", str(pair.new.root))
    assert code == 0, out
    assert f"master key sha256 {key_fingerprint(new_key)}" in out
    assert new_key.hex() not in out

    escrow = tmp_path / "escrow.key"
    escrow.write_text(old_key.hex() + "\n")
    escrow.chmod(0o644)
    code, out = run("keys", "fingerprint", "--key-file", str(escrow))
    assert code == 2
    assert "readable by others" in out
    escrow.chmod(0o600)
    code, out = run("keys", "fingerprint", "--key-file", str(escrow))
    assert code == 0, out
    assert key_fingerprint(old_key) in out

    home_args = ["--home", str(pair.new.root), "--actor", "olu"]
    code, out = run("keys", "carry-choices", "--from-home", str(pair.new.root), *home_args)
    assert code == 2
    assert "error: the old and the new home have the same master key" in out

    # The old key from an escrowed copy, the old home's own key file gone.
    (pair.old.root / "keys" / "master.key").unlink()
    code, out = run("keys", "carry-choices", "--from-home", str(pair.old.root), *home_args)
    assert code == 2
    assert "the old home has no key file" in out
    assert "--old-key-file" in out
    args = ["--from-home", str(pair.old.root), "--old-key-file", str(escrow), *home_args]
    code, out = run("keys", "carry-choices", *args)
    assert code == 0, out
    assert out.count("\n") == 1
    assert (
        "choices considered 5: 4 carried, 0 already present, 1 unmatched "
        "(1 patient not in the sources" in out
    )
    assert "ask that patient to choose again" in out
    assert "2 imported from files not carried" in out
    assert "7 patients in 3 files, 1 rows without a valid NHS number" in out
    assert not [v for v in values if v in out], "an NHS number or pid was printed"

    code, out = run("keys", "carry-choices", *args)
    assert code == 0, out
    assert "choices considered 5: 0 carried, 4 already present, 1 unmatched" in out
    assert not [v for v in values if v in out], "an NHS number or pid was printed"
    with control_plane(pair.new) as store:
        carried = [e for e in store.audit.events() if e.action == CARRIED_OVER]
    assert [(e.actor, e.details["carried"]) for e in carried] == [("olu", 4), ("olu", 0)]
