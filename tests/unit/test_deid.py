"""Pure parts of the de-identifier: date parsing, name forms, known values, span merging."""

from __future__ import annotations

import datetime as dt

import pytest

from sde.deid import dates
from sde.deid.known import Folded, Known, fold, initials, name_tokens
from sde.deid.spans import (
    GUESS,
    KNOWN,
    VALIDATED,
    Candidate,
    Span,
    join_names,
    redact,
    resolve,
)
from sde.errors import InputError

BIRTH = dt.date(1961, 3, 12)


@pytest.mark.parametrize(
    "text",
    [
        "12/03/1961",
        "12/3/1961",
        "12-03-1961",
        "12.03.1961",
        "12/03/61",
        "1961-03-12",
        "12-Mar-1961",
        "12th March 1961",
        "12 March 1961",
        "12 Mar 1961",
        "12th of March 1961",
        "March 12, 1961",
        "Mar 12th 1961",
    ],
)
def test_every_layout_of_a_full_date_parses_to_the_same_day(text: str) -> None:
    match = dates.DATE.search(f"seen {text}.")
    assert match is not None
    assert match.group() == text
    parts = dates.parse(match)
    assert parts is not None
    assert dates.same_date(parts, BIRTH)


@pytest.mark.parametrize("text", ["Mar 2024", "March 2024", "Mar-2024", "03/2024", "12th March"])
def test_partial_dates_are_dates(text: str) -> None:
    match = dates.DATE.search(f"since {text} ok")
    assert match is not None
    assert match.group() == text


@pytest.mark.parametrize(
    "text",
    [
        "review in 2/7",
        "6/12 follow-up",
        "3/52",
        "BP 132/84",
        "score 18/48",
        "co-careldopa 25/100",
        "power 4/5",
        "SNOMED 44054006",
        "eGFR 45 mL/min/1.73m2",
        "E11.9",
        "version 1.2.3",
    ],
)
def test_shorthand_ratios_and_codes_are_not_dates(text: str) -> None:
    assert dates.DATE.search(text) is None


def test_impossible_months_do_not_parse() -> None:
    assert dates.DATE.search("on 12/13/1961") is None


@pytest.mark.parametrize(
    ("before", "dob"),
    [
        ("DOB: ", True),
        ("D.O.B. ", True),
        ("date of birth ", True),
        ("born on ", True),
        ("(DOB ", True),
        ("seen on ", False),
        ("letter dated ", False),
    ],
)
def test_date_of_birth_context(before: str, dob: bool) -> None:
    text = f"{before}12/03/1961"
    assert dates.is_dob_context(text, len(before)) is dob


def test_iso_and_compact_forms() -> None:
    assert dates.parse_iso("1961-03-12") == BIRTH
    assert dates.parse_iso("12/03/1961") is None
    assert dates.parse_iso("1961-02-30") is None
    assert dates.compact_forms(BIRTH) == ("12031961", "19610312")


def test_name_forms() -> None:
    assert name_tokens("Mary-Jane de la Cruz") == ["Mary", "Jane", "Cruz"]
    assert name_tokens("O'Brien") == ["O'Brien"]
    assert initials(["Amina Okafor", "Li"]) == {"AO"}


def test_folded_text_maps_back_to_the_original() -> None:
    text = "Seen  AMINA\nOkafor\u2019s sister"
    folded = Folded(text)
    (span,) = folded.find_all(fold("amina okafor's"))
    assert text[span[0] : span[1]] == "AMINA\nOkafor\u2019s"
    assert list(Folded("Lisa and Li").find_all("li")) == [(9, 11)]


def test_known_from_json_takes_strings_or_lists() -> None:
    known = Known.from_json(
        {
            "names": ["Amina", "Okafor"],
            "relatives": "Idris Okafor",
            "nhs_number": "943 476 5919",
            "date_of_birth": ["1961-03-12", "1961-03-21"],
            "address": ["14 Oak Road", "Leeds"],
            "phone": "0113 496 0321",
            "emails": None,
            "hospital_number": ["RR8-4821937"],
        }
    )
    assert known.names == ("Amina", "Okafor")
    assert known.relatives == ("Idris Okafor",)
    assert known.date_of_birth == "1961-03-12"
    assert known.other_dates_of_birth == ("1961-03-21",)
    assert known.address == "14 Oak Road\nLeeds"
    assert known.phones == ("0113 496 0321",)
    assert known.emails == ()
    assert known.hospital_numbers == ("RR8-4821937",)


def test_unknown_known_keys_are_refused_by_name() -> None:
    with pytest.raises(InputError, match="unknown key 'shoe_size'"):
        Known.from_json({"shoe_size": "9"})
    with pytest.raises(InputError, match="'names' holds a value that is not a string"):
        Known.from_json({"names": [3]})


def test_resolve_merges_overlaps_preferring_known_and_validated_then_longer() -> None:
    spans = resolve(
        [
            Candidate(10, 20, "PERSON", 1.0, KNOWN),
            Candidate(5, 30, "EMAIL", 1.0, VALIDATED),  # longer, as strong: wins
            Candidate(40, 45, "PERSON", 0.7, GUESS),
            Candidate(42, 50, "ADDRESS", 0.7, GUESS),  # longer guess wins
            Candidate(60, 70, "PHONE", 0.8, 1),
            Candidate(60, 70, "NHS_NUMBER", 1.0, VALIDATED),
        ]
    )
    assert spans == [
        Span(5, 30, "EMAIL", 1.0),
        Span(40, 50, "ADDRESS", 0.7),
        Span(60, 70, "NHS_NUMBER", 1.0),
    ]


def test_resolve_breaks_ties_by_label_priority_whatever_the_input_order() -> None:
    a = Candidate(0, 5, "DATE", 0.9, 1)
    b = Candidate(0, 5, "PHONE", 0.9, 1)
    assert resolve([a, b]) == resolve([b, a]) == [Span(0, 5, "PHONE", 0.9)]


def test_adjacent_name_spans_join_and_redaction_uses_typed_placeholders() -> None:
    text = "Re: Amina Okafor, 12 Oak Road"
    spans = join_names(
        text, [Span(4, 9, "PERSON", 1.0), Span(10, 16, "PERSON", 0.7), Span(18, 29, "ADDRESS", 0.8)]
    )
    assert spans == [Span(4, 16, "PERSON", 1.0), Span(18, 29, "ADDRESS", 0.8)]
    assert redact(text, spans) == "Re: <PERSON>, <ADDRESS>"
