"""The pure rules of a patient's sign-in: the date of birth from the form, the keyed
sign-in check, the client key, and the lock-out."""

from __future__ import annotations

import datetime as dt

import pytest

from sde.domain.datasets import parse_spec
from sde.domain.generalise import normalise_postcode
from sde.domain.patient_sign_in import (
    LockoutRule,
    birth_date,
    client_key,
    locked_until,
    sign_in_check,
    sign_in_key,
)
from sde.errors import InputError

MASTER = bytes(range(32))
KEY = sign_in_key(MASTER)
BORN = dt.date(1980, 3, 27)
T0 = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
RULE = LockoutRule(3, dt.timedelta(minutes=15), dt.timedelta(hours=1))


def minutes(*offsets: float) -> list[dt.datetime]:
    return [T0 + dt.timedelta(minutes=m) for m in offsets]


@pytest.mark.parametrize(
    ("day", "month", "year", "expected"),
    [
        ("27", "3", "1980", BORN),
        (" 07 ", "03", "1980", dt.date(1980, 3, 7)),
        ("29", "2", "2000", dt.date(2000, 2, 29)),
        ("29", "2", "1999", None),  # not a real date
        ("31", "4", "1980", None),
        ("27", "3", "80", None),  # two-digit year
        ("27", "March", "1980", None),
        ("", "3", "1980", None),
        ("1", "1", "1879", None),  # before 1880
        ("1", "1", "9999", None),  # in the future
        ("-1", "3", "1980", None),
    ],
)
def test_birth_date_from_the_three_boxes(
    day: str, month: str, year: str, expected: dt.date | None
) -> None:
    assert birth_date(day, month, year) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("LS1 4AP", "LS1 4AP"),
        ("ls14ap", "LS1 4AP"),
        ("  sw1a 1aa ", "SW1A 1AA"),
        ("EC1A1BB", "EC1A 1BB"),
        ("LS1", None),
        ("not a postcode", None),
        ("", None),
    ],
)
def test_postcodes_are_normalised_or_refused(raw: str, expected: str | None) -> None:
    assert normalise_postcode(raw) == expected


def test_the_check_ignores_how_the_postcode_was_typed_but_not_what_it_is() -> None:
    check = sign_in_check(KEY, "pid-a", BORN, "LS1 4AP")
    assert check is not None
    assert len(check) == 64
    assert sign_in_check(KEY, "pid-a", BORN, "ls14ap") == check
    assert sign_in_check(KEY, "pid-a", BORN, "LS1 4AQ") != check
    assert sign_in_check(KEY, "pid-a", BORN + dt.timedelta(days=1), "LS1 4AP") != check
    assert sign_in_check(KEY, "pid-b", BORN, "LS1 4AP") != check
    assert sign_in_check(sign_in_key(bytes(32)), "pid-a", BORN, "LS1 4AP") != check
    assert sign_in_check(KEY, "pid-a", BORN, "nowhere") is None


def test_the_check_holds_neither_the_date_nor_the_postcode() -> None:
    check = sign_in_check(KEY, "pid-a", BORN, "LS1 4AP")
    assert check is not None
    for value in ("1980", "LS1", "4AP", "pid-a"):
        assert value.lower() not in check.lower()


def test_client_keys_are_keyed_and_hold_no_address() -> None:
    key = client_key(MASTER, "203.0.113.7")
    assert key.startswith("client:")
    assert "203" not in key
    assert key == client_key(MASTER, "203.0.113.7")
    assert key != client_key(MASTER, "203.0.113.8")
    assert key != client_key(bytes(32), "203.0.113.7")


def test_fewer_failures_than_the_limit_do_not_lock() -> None:
    assert locked_until(minutes(0, 1), T0 + dt.timedelta(minutes=2), RULE) is None
    assert locked_until([], T0, RULE) is None


def test_the_limit_within_the_window_locks_from_the_last_failure() -> None:
    failures = minutes(0, 5, 10)
    now = T0 + dt.timedelta(minutes=11)
    assert locked_until(failures, now, RULE) == T0 + dt.timedelta(minutes=70)
    # order does not matter
    assert locked_until(list(reversed(failures)), now, RULE) == T0 + dt.timedelta(minutes=70)


def test_failures_spread_wider_than_the_window_do_not_lock() -> None:
    assert locked_until(minutes(0, 10, 20, 30), T0 + dt.timedelta(minutes=31), RULE) is None


def test_a_lock_ends_when_it_says() -> None:
    failures = minutes(0, 1, 2)
    assert locked_until(failures, T0 + dt.timedelta(minutes=61, seconds=59), RULE) is not None
    assert locked_until(failures, T0 + dt.timedelta(minutes=62), RULE) is None


def test_the_latest_lock_wins() -> None:
    failures = minutes(0, 1, 2, 100, 101, 102)
    assert locked_until(failures, T0 + dt.timedelta(minutes=103), RULE) == T0 + dt.timedelta(
        minutes=162
    )


@pytest.mark.parametrize(
    ("failures", "window", "lock"),
    [(0, 15, 60), (3, 0, 60), (3, 15, 0), (3, -1, 60)],
)
def test_a_rule_must_make_sense(failures: int, window: int, lock: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        LockoutRule(failures, dt.timedelta(minutes=window), dt.timedelta(minutes=lock))


SPEC = {
    "name": "people",
    "origin": "gp",
    "columns": {
        "nhs_number": {"role": "identifier"},
        "dob": {"role": "drop", "type": "date"},
        "postcode": {"role": "drop"},
        "count": {"role": "keep", "type": "integer"},
    },
}


def test_a_spec_names_its_sign_in_columns() -> None:
    spec = parse_spec(
        {**SPEC, "sign_in": {"birth_date": "dob", "postcode": "postcode"}}, source="t"
    )
    assert spec.sign_in is not None
    assert (spec.sign_in.birth_date, spec.sign_in.postcode) == ("dob", "postcode")
    assert parse_spec(SPEC, source="t").sign_in is None


@pytest.mark.parametrize(
    ("sign_in", "message"),
    [
        ("dob", "must map birth_date and postcode"),
        ({"birth_date": "dob"}, "must map birth_date and postcode"),
        ({"birth_date": "dob", "postcode": "postcode", "x": 1}, "must map birth_date"),
        ({"birth_date": "missing", "postcode": "postcode"}, "birth_date must name a column"),
        ({"birth_date": "postcode", "postcode": "postcode"}, "must have type date"),
        ({"birth_date": "dob", "postcode": "count"}, "must have type string"),
    ],
)
def test_a_bad_sign_in_setting_is_refused(sign_in: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_spec({**SPEC, "sign_in": sign_in}, source="t")
