"""The de-identification engine with the real Presidio registry: every label, every class
of hard negative, entity and NLP configuration errors, and multi-process detection."""

from __future__ import annotations

import itertools

import pytest

from sde.deid import LABELS, Deidentifier, Known, Span
from sde.errors import ConfigError

pytestmark = pytest.mark.presidio


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier()


def labelled(deid: Deidentifier, text: str, known: Known | None = None) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.label) for s in deid.detect(text, known)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("NHS 943 476 5919.", ("943 476 5919", "NHS_NUMBER")),
        ("nhs no 943-476-5919", ("943-476-5919", "NHS_NUMBER")),
        ("ref 9434765919 seen", ("9434765919", "NHS_NUMBER")),
        ("DOB: 12/03/1961", ("12/03/1961", "DATE_OF_BIRTH")),
        ("born 12th March 1961 in", ("12th March 1961", "DATE_OF_BIRTH")),
        ("Re: MOORE, Arthur (06/09/45)", ("06/09/45", "DATE_OF_BIRTH")),
        ("seen on 12-Mar-2024.", ("12-Mar-2024", "DATE")),
        ("since Mar 2024,", ("Mar 2024", "DATE")),
        ("on 2024-03-12 at", ("2024-03-12", "DATE")),
        ("Tel 0113 496 0321.", ("0113 496 0321", "PHONE")),
        ("call (0113) 496-0321", ("(0113) 496-0321", "PHONE")),
        ("mobile 07700 900123", ("07700 900123", "PHONE")),
        ("or +44 (0)113 496 0321", ("+44 (0)113 496 0321", "PHONE")),
        ("or +44 7700 900123", ("+44 7700 900123", "PHONE")),
        ("or 0113.496.0321", ("0113.496.0321", "PHONE")),
        ("email a.okafor@example.com.", ("a.okafor@example.com", "EMAIL")),
        ("at HG1 2AB today", ("HG1 2AB", "UK_POSTCODE")),
        ("NI number AB 12 34 56 C", ("AB 12 34 56 C", "UK_NINO")),
        ("MRN: 12345678", ("12345678", "HOSPITAL_NUMBER")),
        ("hospital number K1234567", ("K1234567", "HOSPITAL_NUMBER")),
        ("ref RR8-4821937", ("RR8-4821937", "HOSPITAL_NUMBER")),
        ("see https://example.org/a?b=1.", ("https://example.org/a?b=1", "URL")),
        ("see www.nhs.uk/conditions", ("www.nhs.uk/conditions", "URL")),
        ("lives at 12 Oak Road, Harrogate HG1", ("12 Oak Road, Harrogate", "ADDRESS")),
        ("at Flat 3, 12 Oak Road", ("Flat 3, 12 Oak Road", "ADDRESS")),
        ("from Rose Cottage, Harrogate\n", ("Rose Cottage, Harrogate", "ADDRESS")),
        ("lives at The Old Rectory.", ("The Old Rectory", "ADDRESS")),
        ("Seen by Dr Okonkwo-Bright today.", ("Okonkwo-Bright", "PERSON")),
        ("Mrs J. Patel attended", ("J. Patel", "PERSON")),
        ("with her daughter Priya.", ("Priya", "PERSON")),
        ("Dear Isadora,", ("Isadora", "PERSON")),
        ("c.c. Mr Tomasz Kowalczyk", ("Tomasz Kowalczyk", "PERSON")),
        ("Yours sincerely,\n\nSiobhan Nwachukwu\nConsultant", ("Siobhan Nwachukwu", "PERSON")),
        ("Plan agreed with Oluwaseun Adeyemi today.", ("Oluwaseun Adeyemi", "PERSON")),
        ("Wojciech Kowalczyk attended clinic.", ("Wojciech Kowalczyk", "PERSON")),
        ("Dr A.Green\nConsultant Physician", ("A.Green", "PERSON")),
        ("Plan agreed.\n\nZahid Rehman\nConsultant Physician", ("Zahid Rehman", "PERSON")),
        ("Next visit 1 Jun. morag urquhart (General Practitioner)", ("morag urquhart", "PERSON")),
        ("Advised to call back if worse. GA", ("GA", "PERSON")),
        ("Surname: MIRZA\nForename: Iqra\n", ("Iqra", "PERSON")),
        ("Next review 26 Jun. barbara bennett", ("barbara bennett", "PERSON")),
    ],
)
def test_each_label_is_found(deid: Deidentifier, text: str, found: tuple[str, str]) -> None:
    assert found in labelled(deid, text)


def test_the_patients_own_identifiers_in_any_form(deid: Deidentifier) -> None:
    known = Known(
        names=("Zorvath", "Quibblewick"),
        relatives=("Hespera Quibblewick",),
        date_of_birth="1961-03-12",
        address="14 Quillfeather Lane, Kettlewick",
        postcode="LS1 4AP",
        phones=("0113 496 0321",),
        hospital_numbers=("X99-1234",),
    )
    text = (
        "zorvath quibblewick (QUIBBLEWICK, Zorvath; Z. Quibblewick; ZQ) came with Hespera. "
        "Quibblewick's mum. 12.3.61. Kettlewick. ls14ap. 01134960321. X99-1234."
    )
    out = deid.redact(text, known)
    for secret in ("orvath", "uibblewick", "Hespera", "61", "Kettlewick", "ls14ap", "0321", "1234"):
        assert secret.lower() not in out.lower()
    assert "<DATE_OF_BIRTH>" in out
    assert " <PERSON>)" in out


@pytest.mark.parametrize(
    "text",
    [
        "Continue metformin 500 mg bd, atorvastatin 20 mg on and Trimbow 2 puffs bd.",
        "HbA1c 58 mmol/mol, eGFR 45 mL/min/1.73m2, K 4.6 mmol/L.",
        "BP 132/84 mmHg, HR 72, SpO2 97% on air.",
        "NEWS2 3, GCS 14, CHA2DS2-VASc 3, MoCA 24/30, Oxford hip score 18/48.",
        "Diagnosis E11.9 (ICD-10), SNOMED 44054006, OPCS W37.1, BNF 6.1.2.2.",
        "Review in 2/7, then 6/12; pregnant 32/40; 3/52 of symptoms.",
        "Known Parkinson's disease, Crohn's disease, Addison's and Hodgkin's lymphoma.",
        "Bell's palsy; Wilson's disease; Barrett's oesophagus; Raynaud's phenomenon.",
        "Admitted to St James's University Hospital, Ward 7, then Bronte Ward.",
        "Seen in Great Ormond Street Hospital by the Consultant Cardiologist.",
        "Seen by the Heart Failure Nurse Specialist and the Ward Sister.",
        "A 67-year-old man, aged 67, 67 y/o.",
        "Number 4567891230 is not an NHS number.",
        "Postcode districts M1 and B33 are not postcodes.",
        "We may review her in May.",
        "Dear Colleague,",
        "Please repeat U&Es and FBC in 2 weeks.",
        "Ward: AMU\nConsultant: on call",
        "Plan: follow-up with the Consultant in Palliative Medicine, in 4/7.",
        "Seen in clinic. Review in 6 weeks. CT",
    ],
)
def test_hard_negatives_are_left_alone(deid: Deidentifier, text: str) -> None:
    assert deid.detect(text) == []


def test_a_role_after_a_name_does_not_become_a_name(deid: Deidentifier) -> None:
    text = "Plan: follow-up with Dr Moore, Consultant Cardiologist, in 3/52."
    assert labelled(deid, text) == [("Moore", "PERSON")]


def test_spans_are_sorted_and_do_not_overlap(deid: Deidentifier) -> None:
    text = "Dr Okafor emailed amina.okafor@example.com on 12/03/2024 from 0113 496 0321."
    spans = deid.detect(text, Known(names=("Amina", "Okafor")))
    assert [s.label for s in spans] == ["PERSON", "EMAIL", "DATE", "PHONE"]
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_only_the_asked_entities_are_reported() -> None:
    deid = Deidentifier(entities=("NHS_NUMBER", "DATE"))
    spans = deid.detect("Dr Okafor, NHS 943 476 5919, DOB 12/03/1961")
    assert [s.label for s in spans] == ["NHS_NUMBER", "DATE"]


def test_an_entity_without_a_recognizer_is_an_error_not_a_warning() -> None:
    with pytest.raises(ConfigError, match="no recognizer for entity MARTIAN_ID"):
        Deidentifier(entities=(*LABELS, "MARTIAN_ID"))


def test_an_nlp_model_that_is_not_installed_is_an_error() -> None:
    with pytest.raises(ConfigError, match="spaCy model 'xx_no_such_model' is not installed"):
        Deidentifier(nlp="spacy:xx_no_such_model")
    with pytest.raises(ConfigError, match="unknown NLP engine"):
        Deidentifier(nlp="stanza")


def test_the_recognizers_run_under_presidios_analyzer_engine(deid: Deidentifier) -> None:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NoOpNlpEngine

    analyzer = AnalyzerEngine(
        registry=deid.registry,
        nlp_engine=NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}]),
        supported_languages=["en"],
    )
    assert set(analyzer.get_supported_entities("en")) == set(LABELS)
    results = analyzer.analyze("NHS 943 476 5919, Dr Okafor", language="en")
    assert {(r.entity_type, r.start, r.end) for r in results} >= {
        ("NHS_NUMBER", 4, 16),
        ("PERSON", 21, 27),
    }


NOTES = [
    ("Re: Amina Okafor, DOB 12/03/1961, NHS 943 476 5919. Seen by Dr Kowalczyk.", None),
    ("amina was well; her son Idris phoned on 07700 900123.", Known(names=("Amina", "Okafor"))),
    ("BP 132/84, metformin 500 mg. Review 6/12.", None),
    ("Lives at 12 Oak Road, Harrogate HG1 2AB; email a@b.com", Known(postcode="HG1 2AB")),
] * 10


def test_detect_many_in_processes_equals_one_process(deid: Deidentifier) -> None:
    one = list(deid.detect_many(NOTES))
    assert one == [deid.detect(t, k) for t, k in NOTES]
    assert any(s for s in one)
    with Deidentifier() as parallel:
        assert list(parallel.detect_many(NOTES, processes=2)) == one
        workers = {p.pid for p in parallel._pool._pool}
        # a second call reuses the workers instead of paying their start-up again
        assert list(parallel.detect_many(NOTES, processes=2)) == one
        assert {p.pid for p in parallel._pool._pool} == workers
    assert parallel._pool is None


def test_the_name_lexicon_has_names_of_many_origins_and_no_everyday_words() -> None:
    from sde.deid.names import STRONG, WEAK, lexicon

    names = lexicon()
    assert names.build_seconds < 5
    for name in ("Okafor", "Priya", "Kowalski", "Nguyen", "Siobhan", "Yusuf", "Kaur", "Chen"):
        assert names.tier(name) == STRONG, name
    for name in ("John", "Smith", "Brown"):
        assert names.tier(name) == WEAK, name
    for word in ("Parkinson", "May", "Will", "Ward", "Diagnosis", "Metformin", "Hospital"):
        assert names.tier(word) == 0, word


def test_spans_are_plain_values() -> None:
    span = Span(1, 3, "PERSON", 0.5)
    assert (span.start, span.end, span.label, span.score) == (1, 3, "PERSON", 0.5)


def test_our_recognizer_classes_never_shadow_presidios() -> None:
    """Presidio's default loader finds its recognizers by class name among every loaded
    subclass: a class of ours with the same name would replace Presidio's own in any
    default AnalyzerEngine built in the same process."""
    import presidio_analyzer.predefined_recognizers as predefined

    import sde.deid.recognizers as ours

    presidio_names = {name for name in dir(predefined) if name.endswith("Recognizer")}
    our_names = {
        name
        for name, value in vars(ours).items()
        if isinstance(value, type) and value.__module__ == ours.__name__
    }
    assert presidio_names
    assert not our_names & presidio_names
