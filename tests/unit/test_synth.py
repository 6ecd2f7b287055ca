"""sde synth: the contract's files, determinism, and an exact manifest of deliberately bad
rows (recounted here independently of the generator).

Pure: the generator writes to in-memory streams.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections import Counter
from dataclasses import dataclass

import pytest

from sde.domain.generalise import parse_date
from sde.domain.nhs_number import is_valid, normalise
from sde.services.synth import (
    BAD_KINDS,
    FILES,
    SynthSummary,
    generate,
    manifest_json,
)

# The provider-file contract, written out again here so that a change to the generator's
# layouts cannot silently change what the tests expect.
CONTRACT: dict[str, tuple[str, ...]] = {
    "patients.csv": (
        "nhs_number",
        "given_name",
        "family_name",
        "sex",
        "date_of_birth",
        "address_line",
        "town",
        "postcode",
        "phone",
        "email",
        "gp_practice",
        "ethnicity",
    ),
    "gp_events.csv": ("nhs_number", "event_date", "snomed_code", "term", "value", "unit"),
    "admissions.csv": (
        "nhs_number",
        "hospital_number",
        "provider_code",
        "admission_date",
        "discharge_date",
        "admission_method",
        "primary_diagnosis",
        "procedure",
    ),
    "deaths.csv": ("nhs_number", "date_of_death", "underlying_cause", "place_of_death"),
    "clinic_letters.csv": ("nhs_number", "letter_date", "specialty", "letter_text"),
    "national_opt_out.csv": ("nhs_number",),
    "type1_opt_out.csv": ("nhs_number", "gp_practice"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "patients.csv": ("nhs_number", "date_of_birth"),
    "gp_events.csv": ("nhs_number", "event_date"),
    "admissions.csv": ("nhs_number", "admission_date"),
    "deaths.csv": ("nhs_number", "date_of_death"),
    "clinic_letters.csv": ("nhs_number", "letter_date"),
    "national_opt_out.csv": ("nhs_number",),
    "type1_opt_out.csv": ("nhs_number",),
}
DATES: dict[str, tuple[str, ...]] = {
    "patients.csv": ("date_of_birth",),
    "gp_events.csv": ("event_date",),
    "admissions.csv": ("admission_date", "discharge_date"),
    "deaths.csv": ("date_of_death",),
    "clinic_letters.csv": ("letter_date",),
    "national_opt_out.csv": (),
    "type1_opt_out.csv": (),
}


@dataclass(frozen=True)
class Generated:
    summary: SynthSummary
    texts: dict[str, str]

    def header(self, name: str) -> list[str]:
        return next(csv.reader(io.StringIO(self.texts[name], newline="")))

    def records(self, name: str) -> list[dict[str, str]]:
        reader = csv.reader(io.StringIO(self.texts[name], newline=""))
        header = next(reader)
        return [dict(zip(header, row, strict=True)) for row in reader]


@functools.cache
def population(
    patients: int = 3000,
    seed: int = 42,
    bad_share: float = 0.008,
    batch_size: int = 10_000,
    events_per_patient: float = 10.0,
) -> Generated:
    streams = {name: io.StringIO() for name in FILES}
    summary = generate(
        streams,
        patients,
        seed=seed,
        bad_share=bad_share,
        batch_size=batch_size,
        events_per_patient=events_per_patient,
    )
    return Generated(summary, {name: s.getvalue() for name, s in streams.items()})


def classify(name: str, records: list[dict[str, str]]) -> Counter[str]:
    """Recount bad rows from the file alone. Rows are compared with their NHS number
    normalised, so a row that differs from an earlier one only in how its NHS number is
    spaced counts as a duplicate too (it must not happen except on purpose)."""
    counts: Counter[str] = Counter()
    seen_rows: set[tuple[str, ...]] = set()
    seen_keys: set[str] = set()
    for record in records:
        raw = record["nhs_number"]
        key = (normalise(raw) or raw, *[v for k, v in record.items() if k != "nhs_number"])
        kind = None
        if any(record[column] == "" for column in REQUIRED[name]):
            kind = "missing_required"
        elif not is_valid(raw):
            kind = "invalid_nhs_number"
        elif any(parse_date(record[column]) is None for column in DATES[name]):
            kind = "bad_date"
        elif key in seen_rows:
            kind = "duplicate_row"
        elif name == "patients.csv" and normalise(raw) in seen_keys:
            kind = "duplicate_key"
        seen_rows.add(key)
        if kind is None:
            if name == "patients.csv":
                seen_keys.add(key[0])
        else:
            counts[kind] += 1
    return counts


def test_files_follow_the_contract() -> None:
    generated = population()
    assert tuple(generated.summary.file(n).name for n in FILES) == tuple(CONTRACT)
    for name, columns in CONTRACT.items():
        assert tuple(generated.header(name)) == columns, name
        assert generated.texts[name].endswith("\r\n"), name
        assert generated.summary.file(name).rows == len(generated.records(name)), name


def test_every_file_has_rows() -> None:
    summary = population().summary
    assert summary.patients == 3000
    for name in FILES:
        assert summary.file(name).rows > 0, name


@pytest.mark.parametrize(("bad_share", "seed"), [(0.008, 42), (0.05, 7), (0.0, 3)])
def test_manifest_counts_match_an_independent_recount(bad_share: float, seed: int) -> None:
    generated = population(patients=3000, seed=seed, bad_share=bad_share)
    for name in FILES:
        recount = classify(name, generated.records(name))
        expected = generated.summary.file(name).bad_rows
        assert set(expected) == set(BAD_KINDS)
        assert {k: v for k, v in expected.items() if v} == dict(recount), name


def test_every_kind_of_bad_row_is_produced() -> None:
    summary = population(patients=3000, seed=7, bad_share=0.05).summary
    for name in ("patients.csv", "gp_events.csv", "admissions.csv", "clinic_letters.csv"):
        bad = summary.file(name).bad_rows
        kinds = [k for k in BAD_KINDS if k != "duplicate_key" or name == "patients.csv"]
        assert all(bad[k] > 0 for k in kinds), (name, bad)
    for name in FILES:
        if name != "patients.csv":
            assert summary.file(name).bad_rows["duplicate_key"] == 0, name
    for name in ("national_opt_out.csv", "type1_opt_out.csv"):
        assert summary.file(name).bad_rows["bad_date"] == 0, name


def test_bad_share_is_about_what_was_asked() -> None:
    summary = population().summary
    for name in ("patients.csv", "gp_events.csv", "clinic_letters.csv"):
        entry = summary.file(name)
        assert 0.003 <= entry.bad / entry.rows <= 0.015, (name, entry.bad, entry.rows)
    clean = population(seed=3, bad_share=0.0).summary
    assert all(clean.file(name).bad == 0 for name in FILES)


def test_nhs_numbers_are_valid_except_the_deliberately_invalid_ones() -> None:
    generated = population(bad_share=0.05, seed=7)
    for name in FILES:
        invalid = sum(
            1
            for record in generated.records(name)
            if record["nhs_number"] and not is_valid(record["nhs_number"])
        )
        assert invalid == generated.summary.file(name).bad_rows["invalid_nhs_number"], name


def test_some_nhs_numbers_are_written_with_spaces() -> None:
    numbers = [r["nhs_number"] for r in population().records("patients.csv")]
    spaced = [n for n in numbers if re.fullmatch(r"\d{3} \d{3} \d{4}", n)]
    assert 0.01 < len(spaced) / len(numbers) < 0.1


def test_patients_have_distinct_nhs_numbers_apart_from_duplicates() -> None:
    generated = population()
    records = generated.records("patients.csv")
    numbers = Counter(normalise(r["nhs_number"]) for r in records if r["nhs_number"])
    repeated = sum(c - 1 for c in numbers.values() if c > 1)
    bad = generated.summary.file("patients.csv").bad_rows
    assert repeated == bad["duplicate_row"] + bad["duplicate_key"]


def test_duplicate_key_rows_differ_from_the_first_row() -> None:
    records = population(bad_share=0.05, seed=7).records("patients.csv")
    first: dict[str, dict[str, str]] = {}
    differing = 0
    for record in records:
        key = normalise(record["nhs_number"]) if is_valid(record["nhs_number"]) else None
        if key is None:
            continue
        if key in first and record != first[key]:
            differing += 1
        first.setdefault(key, record)
    assert differing > 0


def test_same_seed_gives_identical_bytes() -> None:
    a = population(patients=800, seed=11)
    streams = {name: io.StringIO() for name in FILES}
    b_summary = generate(streams, 800, seed=11)
    assert a.summary == b_summary
    for name in FILES:
        assert streams[name].getvalue() == a.texts[name], name


def test_batch_size_does_not_change_the_output() -> None:
    a = population(patients=800, seed=11)
    b = population(patients=800, seed=11, batch_size=37)
    assert a.texts == b.texts
    assert a.summary == b.summary


def test_different_seeds_give_different_populations() -> None:
    a = population(patients=800, seed=11)
    b = population(patients=800, seed=12)
    assert a.texts["patients.csv"] != b.texts["patients.csv"]
    a_numbers = {r["nhs_number"] for r in a.records("patients.csv")}
    b_numbers = {r["nhs_number"] for r in b.records("patients.csv")}
    assert len(a_numbers & b_numbers) < 10


def test_events_per_patient_is_respected() -> None:
    for asked in (10.0, 3.0):
        generated = population(patients=2000, seed=5, events_per_patient=asked)
        per_patient = generated.summary.file("gp_events.csv").rows / 2000
        assert 0.85 * asked <= per_patient <= 1.2 * asked, (asked, per_patient)


def test_zero_patients_writes_headers_only() -> None:
    streams = {name: io.StringIO() for name in FILES}
    summary = generate(streams, 0, seed=1)
    for name in FILES:
        assert summary.file(name).rows == 0
        assert streams[name].getvalue() == ",".join(CONTRACT[name]) + "\r\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patients": -1}, "patients"),
        ({"patients": 10, "bad_share": 0.7}, "bad_share"),
        ({"patients": 10, "batch_size": 0}, "batch_size"),
        ({"patients": 10, "events_per_patient": -1.0}, "events_per_patient"),
    ],
)
def test_arguments_are_checked(kwargs: dict[str, float], message: str) -> None:
    streams = {name: io.StringIO() for name in FILES}
    with pytest.raises(ValueError, match=message):
        generate(streams, **kwargs)  # type: ignore[arg-type]


def test_a_missing_stream_is_refused() -> None:
    streams = {name: io.StringIO() for name in FILES if name != "deaths.csv"}
    with pytest.raises(ValueError, match=r"deaths\.csv"):
        generate(streams, 10)


def test_manifest_round_trips_and_holds_counts_only() -> None:
    generated = population()
    text = manifest_json(generated.summary)
    data = json.loads(text)
    assert data["seed"] == 42
    assert data["patients"] == 3000
    assert set(data["files"]) == set(FILES)
    for name, entry in data["files"].items():
        assert set(entry) == {"dataset", "rows", "good_rows", "bad_rows"}
        assert entry["dataset"] == name.removesuffix(".csv")
        assert set(entry["bad_rows"]) == set(BAD_KINDS)
        assert entry["good_rows"] + sum(entry["bad_rows"].values()) == entry["rows"]
    assert SynthSummary.from_dict(data) == generated.summary
    # No patient-level value: no NHS number, name or postcode from the files.
    assert not re.search(r"\d{10}|\d{3} \d{3} \d{4}", text)
    first = generated.records("patients.csv")[0]
    for column in ("given_name", "family_name", "postcode", "address_line"):
        assert first[column] not in text
    assert manifest_json(population(patients=800, seed=11).summary) == manifest_json(
        generate({name: io.StringIO() for name in FILES}, 800, seed=11)
    )
