"""Per-row rules of ingest (pure): types, generalisations, reasons, duplicates."""

from __future__ import annotations

import datetime as dt

import pytest

from sde.domain.datasets import (
    CheckedRow,
    DuplicateFinder,
    Reason,
    Rejection,
    check_row,
    deidentification_failed,
    malformed,
    parse_spec,
)

SPEC = parse_spec(
    {
        "name": "people",
        "origin": "gp",
        "key": ["nhs_number"],
        "columns": {
            "nhs_number": {"role": "identifier"},
            "name": {"role": "drop", "pii": "person"},
            "dob": {
                "role": "quasi_identifier",
                "type": "date",
                "required": True,
                "generalise": "year",
                "output": "year_of_birth",
            },
            "seen": {"role": "quasi_identifier", "type": "date", "generalise": "month"},
            "postcode": {
                "role": "quasi_identifier",
                "generalise": "postcode_district",
                "output": "district",
            },
            "sex": {"role": "keep", "required": True, "allowed": ["M", "F", "U"]},
            "weight": {"role": "keep", "type": "float"},
            "visits": {"role": "keep", "type": "integer"},
            "event_date": {"role": "keep", "type": "date"},
            "note": {"role": "free_text"},
        },
    },
    source="people.yaml",
)

GOOD = {
    "nhs_number": "943 476 5919",
    "name": "Ada Quennell",
    "dob": "1961-03-12",
    "seen": "2024-02-29",
    "postcode": "ls1 4ap",
    "sex": "F",
    "weight": "71.5",
    "visits": "3",
    "event_date": "2023-12-01",
    "note": "Seen in clinic.",
}


def row(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


def test_good_row_is_typed_generalised_and_stripped_of_identifiers() -> None:
    checked = check_row(SPEC, GOOD)
    assert isinstance(checked, CheckedRow)
    assert checked.nhs_number == "9434765919"
    assert checked.values == {
        "year_of_birth": 1961,
        "seen_month": "2024-02",
        "district": "LS1",
        "sex": "F",
        "weight": 71.5,
        "visits": 3,
        "event_date": dt.date(2023, 12, 1),
    }
    assert checked.free_text == {"note": "Seen in clinic."}
    assert checked.key == ("9434765919",)
    # Nothing identifying is carried: no name, no raw date of birth, no full postcode.
    carried = [*checked.values.values(), *checked.free_text.values()]
    assert "Ada Quennell" not in carried
    assert "1961-03-12" not in carried
    assert "ls1 4ap" not in carried


def test_optional_empty_values_are_null() -> None:
    checked = check_row(SPEC, row(weight="", visits=" ", event_date="", postcode="", note=""))
    assert isinstance(checked, CheckedRow)
    assert checked.values["weight"] is None
    assert checked.values["visits"] is None
    assert checked.values["event_date"] is None
    assert checked.values["district"] is None
    assert checked.values["note"] is None
    assert checked.free_text == {}


@pytest.mark.parametrize(
    ("changes", "code", "column"),
    [
        ({"nhs_number": ""}, Reason.MISSING_REQUIRED, "nhs_number"),
        ({"nhs_number": "9434765918"}, Reason.INVALID_NHS_NUMBER, "nhs_number"),
        ({"nhs_number": "943476591"}, Reason.INVALID_NHS_NUMBER, "nhs_number"),
        ({"nhs_number": "0000000000"}, Reason.INVALID_NHS_NUMBER, "nhs_number"),
        ({"nhs_number": "unknown"}, Reason.INVALID_NHS_NUMBER, "nhs_number"),
        ({"dob": ""}, Reason.MISSING_REQUIRED, "dob"),
        ({"dob": "31/02/1980"}, Reason.BAD_DATE, "dob"),
        ({"dob": "1980-13-01"}, Reason.BAD_DATE, "dob"),
        ({"dob": "1980-02-30"}, Reason.BAD_DATE, "dob"),
        ({"dob": "unknown"}, Reason.BAD_DATE, "dob"),
        ({"dob": "19800101"}, Reason.BAD_DATE, "dob"),
        ({"event_date": "2023-W01-1"}, Reason.BAD_DATE, "event_date"),
        ({"sex": ""}, Reason.MISSING_REQUIRED, "sex"),
        ({"sex": "X"}, Reason.BAD_VALUE, "sex"),
        ({"sex": "m"}, Reason.BAD_VALUE, "sex"),
        ({"weight": "seventy"}, Reason.BAD_VALUE, "weight"),
        ({"weight": "1_000"}, Reason.BAD_VALUE, "weight"),
        ({"weight": "nan"}, Reason.BAD_VALUE, "weight"),
        ({"weight": "inf"}, Reason.BAD_VALUE, "weight"),
        ({"weight": "1e999"}, Reason.BAD_VALUE, "weight"),
        ({"visits": "3.5"}, Reason.BAD_VALUE, "visits"),
        ({"postcode": "LS1"}, Reason.BAD_VALUE, "postcode"),
    ],
)
def test_bad_rows_are_refused_with_a_code_naming_the_column_not_the_value(
    changes: dict[str, str], code: Reason, column: str
) -> None:
    result = check_row(SPEC, row(**changes))
    assert isinstance(result, Rejection)
    assert result.code is code
    assert f"'{column}'" in result.reason
    for value in changes.values():
        if len(value.strip()) >= 3:  # shorter ones ("X", "m") occur in ordinary words
            assert value not in result.reason


def test_identifier_is_checked_before_other_columns() -> None:
    result = check_row(SPEC, row(nhs_number="9434765918", dob="unknown"))
    assert isinstance(result, Rejection)
    assert result.code is Reason.INVALID_NHS_NUMBER


def test_numbers_accept_ordinary_layouts() -> None:
    for text, value in [("70", 70.0), ("-1.5", -1.5), (".5", 0.5), ("1e3", 1000.0)]:
        checked = check_row(SPEC, row(weight=text))
        assert isinstance(checked, CheckedRow)
        assert checked.values["weight"] == value


def test_exact_copies_are_found_with_the_earlier_row_number() -> None:
    finder = DuplicateFinder(("nhs_number",))
    fields = ["9434765919", "a,b", ""]
    assert finder.exact_copy(fields, 1) is None
    assert finder.exact_copy(["9434765919", "a", "b,"], 2) is None  # same text, other split
    copy = finder.exact_copy(list(fields), 7)
    assert copy is not None
    assert copy.code is Reason.DUPLICATE_ROW
    assert "data row 1" in copy.reason


def test_repeated_keys_are_found() -> None:
    finder = DuplicateFinder(("nhs_number",))
    assert finder.repeated_key(("9434765919",), 3) is None
    assert finder.repeated_key(("4010232137",), 4) is None
    again = finder.repeated_key(("9434765919",), 9)
    assert again is not None
    assert again.code is Reason.DUPLICATE_KEY
    assert "data row 3" in again.reason
    assert "9434765919" not in again.reason


def test_no_key_means_no_key_duplicates() -> None:
    finder = DuplicateFinder(())
    assert finder.repeated_key((), 1) is None
    assert finder.repeated_key((), 2) is None


def test_other_reasons() -> None:
    assert malformed(4, 3).code is Reason.MALFORMED_ROW
    assert "3 field(s)" in malformed(4, 3).reason
    failed = deidentification_failed("letter_text")
    assert failed.code is Reason.DEIDENTIFICATION_FAILED
    assert "'letter_text'" in failed.reason
