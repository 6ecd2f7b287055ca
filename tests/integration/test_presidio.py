"""Ingest's de-identifier (``sde.adapters.presidio``): known values as ingest passes them,
typed placeholders, clinical content, and the canary self-test."""

from __future__ import annotations

import pytest

from sde.adapters.presidio import PresidioDeidentifier, known_from_pairs
from sde.deid import Deidentifier
from sde.deid.spans import Span
from sde.domain.datasets import Pii

pytestmark = pytest.mark.presidio

KNOWN = [
    (Pii.NHS_NUMBER, "9434765919"),
    (Pii.PERSON, "Aurelia"),
    (Pii.PERSON, "Quennell-Thorpe"),
    (Pii.DATE, "1961-03-07"),
    (Pii.ADDRESS, "14 Quillfeather Lane"),
    (Pii.LOCATION, "Kettlewick"),
    (Pii.POSTCODE, "LS1 4AP"),
    (Pii.PHONE, "0113 496 0321"),
    (Pii.EMAIL, "aurelia.q@example.com"),
    (Pii.IDENTIFIER, "RR8-4821937"),
]


@pytest.fixture(scope="module")
def deid() -> PresidioDeidentifier:
    return PresidioDeidentifier()


@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ("NHS 943 476 5919.", ["943", "5919"]),
        ("NHS: 943-476-5919", ["943", "5919"]),
        ("nhs no.9434765919", ["9434765919"]),
        ("NHS number 943.476.5919", ["943", "5919"]),
        ("DOB 07/03/1961", ["1961"]),
        ("born 7 March 1961", ["March", "1961"]),
        ("born March 7th, 1961", ["March", "1961"]),
        ("dob 7.3.61 (age 63)", ["7.3.61"]),
        ("DOB: 1961-03-07", ["1961"]),
        ("dob 07 Mar 1961", ["Mar", "1961"]),
        ("dob 7th of March 1961", ["March", "1961"]),
        ("compact 07031961 and 19610307", ["07031961", "19610307"]),
        ("AURELIA QUENNELL-THORPE attended", ["AURELIA", "QUENNELL", "THORPE"]),
        ("aurelia quennell thorpe attended", ["aurelia", "quennell", "thorpe"]),
        ("Mrs Quennell-Thorpe\u2019s daughter", ["Quennell", "Thorpe"]),
        (
            "lives at 14 Quillfeather Lane, Kettlewick LS1 4AP",
            ["Quillfeather", "Kettlewick", "4AP"],
        ),
        ("moved to quillfeather  lane", ["quillfeather"]),
        ("postcode ls14ap", ["ls14ap"]),
        ("call 0113 496 0321", ["0321"]),
        ("call +44 113 496 0321", ["0321", "+44"]),
        ("call +44 (0)113 496 0321", ["0321"]),
        ("call 01134960321", ["01134960321"]),
        ("call (0113) 496-0321", ["0321"]),
        ("email AURELIA.Q@EXAMPLE.COM", ["AURELIA", "EXAMPLE"]),
        ("hospital number RR8-4821937", ["4821937"]),
        ("ref RR84821937", ["RR84821937"]),
    ],
)
def test_the_patients_own_identifiers_go_in_any_layout(
    deid: PresidioDeidentifier, text: str, gone: list[str]
) -> None:
    out = deid.deidentify(text, KNOWN)
    for fragment in gone:
        assert fragment.lower() not in out.lower()
    assert "<" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NHS 943 476 5919.", "NHS <NHS_NUMBER>."),
        ("Seen by Dr Okonkwo-Bright today.", "Seen by Dr <PERSON> today."),
        ("Seen by Sister Featherstone.", "Seen by Sister <PERSON>."),
        ("cc Mr J. Pemberton", "cc Mr <PERSON>"),
        ("With her son Lysander.", "With her son <PERSON>."),
        ("His wife, Ottoline, drove.", "His wife, <PERSON>, drove."),
        ("Philippa Sandilands (daughter) phoned", "<PERSON> (daughter) phoned"),
        ("Dear Isadora,", "Dear <PERSON>,"),
        ("Patient: Hieronymus Blenkinsop", "Patient: <PERSON>"),
        ("Yours sincerely,\n\nPeregrine Sandilands", "Yours sincerely,\n\n<PERSON>"),
        ("Kind regards,\n\nStacey GRAY\nConsultant", "Kind regards,\n\n<PERSON>\nConsultant"),
        ("Yours sincerely,\n\n\u0218tefan Dobre", "Yours sincerely,\n\n<PERSON>"),
        ("Kind regards,\nAoife O'DONOGHUE", "Kind regards,\n<PERSON>"),
        ("Dr dos Santos will call.", "Dr <PERSON> will call."),
        ("Dear Dr ap Iorwerth,", "Dear Dr <PERSON>,"),
        ("Sister Ward (Renal Nurse Specialist)", "Sister <PERSON> (Renal Nurse Specialist)"),
        ("Dr \u00d3 Briain, Registrar", "Dr <PERSON>, Registrar"),
        (
            "Name: Willow Pickles  Hosp No: R1K-3364674",
            "Name: <PERSON>  Hosp No: <HOSPITAL_NUMBER>",
        ),
        ("Patient: KNIGHT, Martin | DOB", "Patient: <PERSON> | DOB"),
        ("re: david higginbottom (age 70)", "re: <PERSON> (age 70)"),
        (
            "Re: KNIGHT, Martin\nMartin attended; KNIGHT was well.",
            "Re: <PERSON>\n<PERSON> attended; <PERSON> was well.",
        ),
        ("Mobile 07700 900123.", "Mobile <PHONE>."),
        ("Email j.bloggs@ward.nhs.local", "Email <EMAIL>"),
        ("Other NHS 401 023 2137", "Other NHS <NHS_NUMBER>"),
        ("NI AB 12 34 56 C", "NI <UK_NINO>"),
        ("MRN: K123456", "MRN: <HOSPITAL_NUMBER>"),
        ("ref RR8-4821937", "ref <HOSPITAL_NUMBER>"),
        ("seen 12/03/2024", "seen <DATE>"),
        ("seen 2024-03-12", "seen <DATE>"),
        ("seen 12 March 2024", "seen <DATE>"),
        ("since March 2024", "since <DATE>"),
        ("since 03/2024.", "since <DATE>."),
        ("DOB 07/03/1961", "DOB <DATE>"),
        ("see https://www.nhs.uk/conditions.", "see <URL>."),
        ("at M1 1AE", "at <UK_POSTCODE>"),
        ("at 22 Marchbanks Road", "at <ADDRESS>"),
    ],
)
def test_typed_placeholders(deid: PresidioDeidentifier, text: str, expected: str) -> None:
    assert deid.deidentify(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "BP 132/84 mmHg.",
        "Continue metformin 500 mg twice daily.",
        "HbA1c 58 mmol/mol, eGFR 45 mL/min/1.73m2.",
        "Diagnosis E11.9; procedure K40.1.",
        "Pain score 5/10, review in 6 weeks.",
        "Postcode districts M1 and B33 are not postcodes.",
        "Type 2 diabetes mellitus (SNOMED 44054006).",
        "Atorvastatin 20 mg at night; aspirin 75 mg.",
        "Temperature 37.5 C, SpO2 97% on air, RR 18.",
        "We may review her in May.",
        "Dear Colleague,",
        "Seen by the Ophthalmic Nurse Practitioner.",
    ],
)
def test_clinical_content_survives(deid: PresidioDeidentifier, text: str) -> None:
    assert deid.deidentify(text, KNOWN) == text


def test_ingest_reports_dates_of_birth_as_dates() -> None:
    deid = PresidioDeidentifier()
    assert "DATE_OF_BIRTH" not in deid.engine.entities
    assert deid.deidentify("born 7 March 1961", KNOWN) == "born <DATE>"


def test_known_pairs_become_a_known_record() -> None:
    known = known_from_pairs([*KNOWN, (Pii.DATE, "1961-03-08"), (Pii.PERSON, " Aurelia ")])
    assert known.names == ("Aurelia", "Quennell-Thorpe")
    assert known.nhs_number == "9434765919"
    assert known.date_of_birth == "1961-03-07"
    assert known.other_dates_of_birth == ("1961-03-08",)
    assert known.address == "14 Quillfeather Lane\nKettlewick"
    assert known.postcode == "LS1 4AP"
    assert known.hospital_numbers == ("RR8-4821937",)


class _Blind(Deidentifier):
    def detect(self, text: str, known: object = None) -> list[Span]:
        return []


def test_a_deidentifier_that_misses_its_canary_refuses_to_start() -> None:
    with pytest.raises(RuntimeError, match="self-test"):
        PresidioDeidentifier(_Blind())


def test_overlapping_findings_merge_to_the_stronger_entity(deid: PresidioDeidentifier) -> None:
    # The given name is inside the email: one <EMAIL>, no leftover fragment.
    out = deid.deidentify("write to aurelia.q@example.com today", KNOWN)
    assert out == "write to <EMAIL> today"
