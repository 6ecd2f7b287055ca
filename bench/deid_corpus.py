"""An annotated synthetic corpus of clinical free text, for evaluating de-identification.

Every note is written by this module from one of the templates below, and every identifier
in it is annotated *as the text is built*: a slot appends its text and records the span it
occupies, so no annotation is ever recovered by a regular expression afterwards. The notes,
the phrasing and the lexicons here are independent of the synthetic population's letters
(``sde/services/synth/letters.py``) and of faker (the engine's name lexicon).

Annotation guidelines (what a gold span covers)
-----------------------------------------------
- ``PERSON``: the name tokens of a patient, relative or clinician, in any form: ``Amina
  Okafor``, ``OKAFOR`` and ``Amina`` (the two parts of ``OKAFOR, Amina`` are two spans),
  ``A. Okafor``, initials ``AO``, lower case ``okafor``. Titles (``Dr``, ``Mrs``) and the
  possessive ``'s`` are outside the span. Each PERSON span is tagged with the name's source,
  ``lexicon`` (``sde/services/synth/names.py``, 25 origins) or ``invented`` (built from
  syllables and checked to be in neither that lexicon nor any faker locale), and the role
  (``patient``, ``relative``, ``clinician``).
- ``DATE_OF_BIRTH``: a date the text introduces as a date of birth (``DOB``, ``born``...),
  and any mention of the patient's own date of birth. Every other date, full or partial
  (``Mar 2024``), is ``DATE``. Ordinal suffixes (``12th``) are inside the span.
- ``NHS_NUMBER``, ``PHONE``, ``EMAIL``, ``URL``, ``UK_NINO``, ``HOSPITAL_NUMBER``: the value
  with its internal separators (``+44 (0)113 496 0123`` whole), not the label before it
  (``MRN:``, ``tel``) nor trailing punctuation.
- ``ADDRESS``: house number or name, flat, street, locality and town where a person lives;
  one span per line of an address block, one span for a run on one line (internal commas
  included). The postcode is never inside an ADDRESS span: it is ``UK_POSTCODE``.
- Hard negatives are recorded as spans too (class ``drug``, ``lab``, ``bp``, ``score``,
  ``code``, ``shorthand``, ``eponym``, ``hospital``, ``ward``, ``role``, ``age``,
  ``bad_nhs``). They must not be redacted. A note never uses a hard negative that shares a
  word with a name of a person in the same note (``St James's`` beside a patient called
  James), so a hit on one is always an error of the detector, not of the corpus.

Each note carries ``known``: the patient's identifiers as a linked record would hold them
(given and family name, relatives' full names, NHS number, date of birth ISO, address line
with town, postcode, phones, emails, hospital numbers). Fields are dropped at random, and a
share of notes has no ``known`` at all, because ingest may lack them.

Splits: ``dev`` and ``test`` are the same generator with different seeds
(``SPLIT_SEEDS``): tune on dev, report test. ``negative_sentences()`` is a separate set of
sentences made only of hard negatives. Notes are deterministic per seed and index (each
note has its own ``random.Random``), for the locked faker version (invented names are
checked against its lexicons).

Limits: the templates, the street/town/hospital lists and the hard-negative pools live in
this file, which the engine's author can read; a detector tuned to them would score well
here and nowhere else. The two splits share templates and lexicons, so test is a check
against over-fitting to particular notes, not to the generator. The independent corpus the
project owners hold (``bench/deid_eval.py --external``) is the real test.

    .venv/bin/python -m bench.deid_corpus --split dev --out dev.jsonl
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib
import json
import pkgutil
import random
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sde.domain import nhs_number
from sde.services.synth.names import ORIGINS, Origin

PHI_LABELS: tuple[str, ...] = (
    "PERSON",
    "NHS_NUMBER",
    "DATE_OF_BIRTH",
    "DATE",
    "PHONE",
    "EMAIL",
    "UK_POSTCODE",
    "ADDRESS",
    "UK_NINO",
    "HOSPITAL_NUMBER",
    "URL",
)
NEGATIVE_CLASSES: tuple[str, ...] = (
    "drug",
    "lab",
    "bp",
    "score",
    "code",
    "shorthand",
    "eponym",
    "hospital",
    "ward",
    "role",
    "age",
    "bad_nhs",
)
SPLIT_SEEDS: dict[str, int] = {"dev": 4_104, "test": 90_210}
DEFAULT_NOTES = 600
INVENTED_SHARE = 0.15
KNOWN_ABSENT_SHARE = 0.08
KNOWN_FIELD_SHARE = 0.85


@dataclass(frozen=True)
class GoldSpan:
    """An identifier: ``text[start:end]`` is ``label``. ``source``/``role`` for PERSON."""

    start: int
    end: int
    label: str
    source: str = ""
    role: str = ""


@dataclass(frozen=True)
class NegativeSpan:
    """A hard negative: ``text[start:end]`` is clinical content of class ``cls``."""

    start: int
    end: int
    cls: str


@dataclass(frozen=True)
class Note:
    id: str
    template: str
    text: str
    known: dict[str, Any] | None
    spans: tuple[GoldSpan, ...]
    negatives: tuple[NegativeSpan, ...]

    def to_json(self) -> dict[str, Any]:
        """The external JSONL format, plus this corpus's extra fields."""
        return {
            "id": self.id,
            "template": self.template,
            "text": self.text,
            "known": self.known,
            "spans": [
                {"start": s.start, "end": s.end, "label": s.label}
                | ({"source": s.source} if s.source else {})
                | ({"role": s.role} if s.role else {})
                for s in self.spans
            ],
            "negatives": [{"start": n.start, "end": n.end, "class": n.cls} for n in self.negatives],
        }


# --- lexicons of this module (not shared with the engine) ---------------------------------

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
TOWNS = (
    "Harrogate",
    "Wakefield",
    "Barnsley",
    "Huddersfield",
    "Rotherham",
    "Doncaster",
    "Halifax",
    "Keighley",
    "Blackburn",
    "Oldham",
    "Stockport",
    "Rochdale",
    "Wigan",
    "Derby",
    "Coventry",
    "Luton",
    "Slough",
    "Ipswich",
    "Norwich",
    "Exeter",
    "Plymouth",
    "Hull",
    "York",
    "Sunderland",
    "Middlesbrough",
    "Walsall",
    "Dudley",
    "Northampton",
    "Peterborough",
    "Gloucester",
    "Swindon",
    "Stoke-on-Trent",
    "Burton upon Trent",
    "Hebden Bridge",
    "Market Harborough",
    "Newcastle-under-Lyme",
    "Llanelli",
    "Bangor",
    "Whitby",
    "Scarborough",
)
LOCALITIES = (
    "Headingley",
    "Chapel Allerton",
    "Moss Side",
    "Sparkbrook",
    "Walkley",
    "Easton",
    "Byker",
    "Toxteth",
    "Handsworth",
    "Armley",
    "Hillsborough",
    "Beeston",
)
STREET_WORDS = (
    "Acorn",
    "Bramble",
    "Copper Beech",
    "Dale",
    "Elmfield",
    "Foundry",
    "Gorse",
    "Harewood",
    "Ivy Bank",
    "Juniper",
    "Kestrel",
    "Larch",
    "Mulberry",
    "Netherby",
    "Osprey",
    "Pennine",
    "Quarry",
    "Rosemount",
    "Saxon",
    "Tannery",
    "Upland",
    "Vale",
    "Weaver",
    "Yew Tree",
    "Lockhart",
    "Thornhill",
    "Wharf",
    "Spinners",
    "Goods Yard",
    "Old Mill",
)
STREET_TYPES = (
    "Road",
    "Street",
    "Lane",
    "Avenue",
    "Close",
    "Drive",
    "Crescent",
    "Grove",
    "Terrace",
    "Way",
    "Gardens",
    "Court",
    "Mews",
    "Rise",
    "Walk",
    "Row",
)
HOUSE_NAMES = (
    "Glebe Cottage",
    "The Old Bakery",
    "Windyridge",
    "Larkspur House",
    "Two Oaks",
    "The Granary",
    "Fell View",
    "Hawthorn Barn",
    "Nook End",
    "Ashgrove Farm",
)
BLOCKS = (
    "Weavers Court",
    "Harbour House",
    "Elm Tower",
    "Station Lofts",
    "Cooper Heights",
    "Brunswick Mansions",
    "Dyers Yard",
)
POSTCODE_AREAS = (
    "LS",
    "BD",
    "HX",
    "HD",
    "WF",
    "S",
    "M",
    "B",
    "L",
    "NE",
    "SR",
    "YO",
    "HU",
    "DN",
    "NG",
    "LE",
    "CV",
    "OX",
    "BS",
    "CF",
    "SA",
    "EX",
    "PL",
    "NR",
    "IP",
    "E",
    "N",
    "SE",
    "SW",
    "W",
    "NW",
    "EC",
    "WC",
)
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.co.uk")
CLINICIAN_DOMAINS = ("nhs.net", "example-nhs.uk")
HOSPITALS = (
    "St James's University Hospital",
    "the Royal Infirmary",
    "Northern General Hospital",
    "Queen Elizabeth Hospital",
    "St Thomas' Hospital",
    "Royal Victoria Infirmary",
    "Princess Royal Hospital",
    "St Mary's Hospital",
    "Royal Free Hospital",
    "Addenbrooke's Hospital",
    "Freeman Hospital",
    "John Radcliffe Hospital",
    "Alder Hey Children's Hospital",
    "Great Ormond Street Hospital",
    "Royal Hallamshire Hospital",
    "Seacroft Hospital",
)
WARDS = (
    "Ward 12",
    "Ward 7B",
    "Ward 31",
    "Churchill Ward",
    "Nightingale Ward",
    "Coronary Care Unit",
    "AMU",
    "Ward J24",
    "Fleming Ward",
    "the Acute Stroke Unit",
    "Ward 4 (Elderly Care)",
    "Brontë Ward",
)
ROLES = (
    "Consultant Cardiologist",
    "Consultant Physician",
    "Specialty Registrar",
    "Registrar in Respiratory Medicine",
    "Staff Nurse",
    "Ward Sister",
    "Clinical Nurse Specialist",
    "Advanced Nurse Practitioner",
    "Consultant Psychiatrist",
    "Community Psychiatric Nurse",
    "Community Midwife",
    "Senior Physiotherapist",
    "Occupational Therapist",
    "Clinical Pharmacist",
    "General Practitioner",
    "Foundation Year 2 Doctor",
    "Consultant Radiologist",
    "Consultant Histopathologist",
    "Paramedic",
    "Health Care Assistant",
    "Dietitian",
    "Social Worker",
    "Consultant Orthopaedic Surgeon",
    "Consultant in Palliative Medicine",
)
DRUGS = (
    "metformin 500 mg bd",
    "atorvastatin 20mg on",
    "ramipril 5 mg od",
    "amlodipine 10mg od",
    "bisoprolol 2.5 mg od",
    "apixaban 5mg bd",
    "furosemide 40mg om",
    "omeprazole 20 mg od",
    "levothyroxine 100 micrograms od",
    "sertraline 50mg od",
    "salbutamol 100mcg 2 puffs prn",
    "paracetamol 1g qds",
    "co-codamol 30/500 2 tabs qds prn",
    "gliclazide 80 mg bd",
    "insulin glargine 22 units on",
    "prednisolone 30mg od",
    "amoxicillin 500mg tds",
    "morphine sulfate 10mg/5ml 2.5ml prn",
    "warfarin as per INR",
    "methotrexate 15 mg once weekly",
    "folic acid 5mg weekly",
    "mirtazapine 15mg on",
    "quetiapine 25mg bd",
    "lansoprazole 30 mg od",
    "tamsulosin 400 micrograms od",
    "Fostair 100/6 2 puffs bd",
)
LABS = (
    "HbA1c 58 mmol/mol",
    "eGFR 54",
    "Na 138",
    "K 4.6",
    "creatinine 112 umol/L",
    "Hb 118 g/L",
    "WCC 11.2",
    "CRP 46",
    "TSH 2.1 mU/L",
    "total cholesterol 5.8 mmol/L",
    "ALT 34",
    "INR 2.4",
    "troponin 14 ng/L",
    "BNP 410",
    "ferritin 22 ug/L",
    "platelets 245",
    "urea 7.9",
    "lactate 1.8",
    "vitamin D 31 nmol/L",
    "PSA 4.2",
)
SCORES = (
    "NEWS2 3",
    "NEWS2 score 5",
    "GCS 14",
    "GCS 15/15",
    "MMSE 24/30",
    "MoCA 22/30",
    "PHQ-9 17",
    "GAD-7 12",
    "Wells score 4",
    "CHA2DS2-VASc 3",
    "Waterlow 15",
    "MUST 2",
    "Rockwood CFS 5",
    "APGAR 9",
    "Barthel 65/100",
    "qSOFA 1",
)
CODES = (
    "ICD-10 E11.9",
    "ICD-10 I48.0",
    "ICD-10 J44.1",
    "ICD-10 F32.1",
    "SNOMED CT 44054006",
    "SNOMED 195967001",
    "SCTID 38341003",
    "BNF 2.12",
    "BNF 6.1.2.2",
    "OPCS K40.1",
    "OPCS W37.1",
    "Read code C10F.",
    "E11.9",
    "I10",
    "K40.1",
    "44054006",
)
SHORTHAND = (
    "2/7",
    "6/12",
    "3/52",
    "1/12",
    "4/7",
    "2/52",
    "12/12",
    "5/7",
)
EPONYMS = (
    "Parkinson's disease",
    "Crohn's disease",
    "Addison's disease",
    "Hodgkin's lymphoma",
    "Bell's palsy",
    "Down's syndrome",
    "Alzheimer's disease",
    "Graves' disease",
    "Cushing's syndrome",
    "Raynaud's phenomenon",
    "Hashimoto's thyroiditis",
    "Barrett's oesophagus",
    "Guillain-Barré syndrome",
    "Sjögren's syndrome",
    "Dupuytren's contracture",
    "Meniere's disease",
    "Colles' fracture",
    "Paget's disease",
    "Still's disease",
    "Wilson's disease",
)
BATCH_WORDS = ("batch no.", "lot number", "device serial", "catalogue no.", "order ref")


# --- names -----------------------------------------------------------------------------

_ONSETS = (
    "B", "Br", "D", "Dr", "F", "G", "Gr", "K", "Kr", "L", "M", "N", "P", "Pr", "R", "S",
    "St", "T", "Tr", "V", "Z", "Th", "Qu", "J", "H", "Sk", "Vr", "Zh", "Cl", "Fl",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ae", "ei", "ou", "y")
_CODAS = ("", "", "n", "l", "r", "s", "th", "nd", "rk", "x", "m", "lt", "rn", "z", "sh", "ck")


@functools.lru_cache(maxsize=1)
def lexicon_words() -> frozenset[str]:
    """Lower-cased name words of ``names.py`` and of every faker person locale: invented
    names must be in neither."""
    words: set[str] = set()
    for origin in ORIGINS:
        for group in (
            origin.male,
            origin.female,
            origin.male_older,
            origin.female_older,
            origin.male_younger,
            origin.female_younger,
        ):
            for name in group:
                words.update(w.lower() for w in re.split(r"[\s\-']+", name) if w)
        for male, female in origin.surnames:
            for name in (male, female):
                words.update(w.lower() for w in re.split(r"[\s\-']+", name) if w)
    try:
        import faker.providers.person as person_providers
    except ImportError:  # pragma: no cover - faker is a project dependency
        return frozenset(words)
    for module_info in pkgutil.iter_modules(person_providers.__path__):
        module = importlib.import_module(f"faker.providers.person.{module_info.name}")
        provider = getattr(module, "Provider", None)
        for attr in (
            "first_names",
            "last_names",
            "first_names_male",
            "first_names_female",
            "first_names_nonbinary",
        ):
            values = getattr(provider, attr, None)
            if isinstance(values, dict | list | tuple | set | frozenset):
                words.update(str(v).lower() for v in values)
    return frozenset(words)


def invented_name(rng: random.Random, syllables: int) -> str:
    """A name-shaped word in no lexicon (``Brouvel``, ``Thaeskrin``)."""
    banned = lexicon_words()
    while True:
        word = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables))
        word += rng.choice(_CODAS)
        word = word[0].upper() + word[1:].lower()
        if 4 <= len(word) <= 12 and word.lower() not in banned:
            return word


@dataclass
class Person:
    first: str
    last: str
    sex: str
    source: str  # "lexicon" | "invented"
    role: str  # "patient" | "relative" | "clinician"
    title: str
    relation: str = ""
    job: str = ""
    email: str = ""
    phone: str = ""  # written with format_mobile (relatives) or format_landline (others)
    landline: tuple[str, str] = ("", "")

    @property
    def full(self) -> str:
        return f"{self.first} {self.last}"

    def tokens(self) -> set[str]:
        return {w.lower() for w in re.split(r"[\s\-']+", self.full) if w}


_ORIGIN_WEIGHTS = [o.weight**0.5 for o in ORIGINS]  # flatter than the census: many origins


def _given_pool(origin: Origin, sex: str) -> tuple[str, ...]:
    if sex == "F":
        return origin.female + origin.female_older + origin.female_younger
    return origin.male + origin.male_older + origin.male_younger


def make_person(rng: random.Random, role: str, sex: str | None = None) -> Person:
    sex = sex or rng.choice("MF")
    if rng.random() < INVENTED_SHARE:
        first, last, source = (
            invented_name(rng, 2),
            invented_name(rng, rng.choice((2, 3))),
            "invented",
        )
    else:
        origin = rng.choices(ORIGINS, weights=_ORIGIN_WEIGHTS)[0]
        first = rng.choice(_given_pool(origin, sex))
        male, female = rng.choice(origin.surnames)
        last = female if sex == "F" else male
        source = "lexicon"
    if role == "clinician":
        title = "Dr"
    elif sex == "F":
        title = rng.choice(("Mrs", "Ms", "Miss", "Mrs"))
    else:
        title = "Mr"
    return Person(first, last, sex, source, role, title)


# --- identifiers in their written forms --------------------------------------------------


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def format_date(rng: random.Random, d: dt.date) -> str:
    month = MONTHS[d.month - 1]
    forms = (
        f"{d.day:02d}/{d.month:02d}/{d.year}",
        f"{d.day}/{d.month}/{d.year}",
        f"{d.day:02d}-{month[:3]}-{d.year}",
        f"{_ordinal(d.day)} {month} {d.year}",
        f"{d.day} {month} {d.year}",
        f"{d.day} {month[:3]} {d.year}",
        d.isoformat(),
        f"{d.day:02d}.{d.month:02d}.{d.year}",
        f"{month} {d.day}, {d.year}",
        f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",
    )
    return rng.choice(forms)


def format_partial_date(rng: random.Random, d: dt.date) -> str:
    month = MONTHS[d.month - 1]
    return rng.choice((f"{month[:3]} {d.year}", f"{month} {d.year}", f"{month[:3]}-{d.year}"))


def make_nhs_number(rng: random.Random) -> str:
    while True:
        made = nhs_number.complete(f"{rng.randrange(400_000_000, 999_999_999):09d}")
        if made is not None and nhs_number.is_valid_digits(made):
            return made


def bad_nhs_number(rng: random.Random) -> str:
    while True:
        digits = f"{rng.randrange(1_000_000_000, 9_999_999_999):010d}"
        if not nhs_number.is_valid_digits(digits):
            return digits


def format_nhs(rng: random.Random, digits: str) -> str:
    a, b, c = digits[:3], digits[3:6], digits[6:]
    return rng.choice((f"{a} {b} {c}", f"{a}-{b}-{c}", digits, f"{a} {b} {c}", digits))


def make_landline(rng: random.Random) -> tuple[str, str]:
    """(area code without its 0, subscriber) for a UK geographic number."""
    kind = rng.random()
    if kind < 0.35:
        return (
            f"1{rng.randrange(1, 10)}{rng.randrange(1, 10)}",
            f"{rng.randrange(2_000_000, 9_999_999)}",
        )
    if kind < 0.7:
        area = f"1{rng.randrange(200, 999)}"
        return area, f"{rng.randrange(200_000, 999_999)}"
    return f"2{rng.choice('0389')}", f"{rng.randrange(3_000_0000, 8_999_9999)}"


def format_landline(rng: random.Random, area: str, sub: str) -> str:
    if len(sub) == 8:  # 020 7946 0123
        s1, s2 = sub[:4], sub[4:]
    elif len(sub) == 7:  # 0113 496 0123
        s1, s2 = sub[:3], sub[3:]
    else:  # 01632 960123
        s1, s2 = sub, ""
    rest = f"{s1} {s2}".strip()
    compact = sub
    return rng.choice(
        (
            f"0{area} {rest}",
            f"0{area}{compact}",
            f"(0{area}) {rest}",
            f"0{area}-{rest.replace(' ', '-')}",
            f"0{area}.{rest.replace(' ', '.')}",
            f"+44 {area} {rest}",
            f"+44 (0){area} {rest}",
            f"+44 (0) {area} {compact}",
            f"+44{area}{compact}",
            f"0{area} {compact}",
        )
    )


def make_mobile(rng: random.Random) -> str:
    return f"7{rng.randrange(100, 999)}{rng.randrange(100_000, 999_999)}"


def format_mobile(rng: random.Random, digits: str) -> str:
    a, b = digits[:4], digits[4:]
    return rng.choice(
        (
            f"0{a} {b}",
            f"0{a}{b}",
            f"0{a} {b[:3]} {b[3:]}",
            f"+44 {a} {b}",
            f"+44{a}{b}",
            f"+44 (0){a} {b}",
            f"(0{a}) {b}",
            f"0{a}-{b}",
            f"0{a}.{b[:3]}.{b[3:]}",
        )
    )


_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def make_postcode(rng: random.Random) -> str:
    area = rng.choice(POSTCODE_AREAS)
    district = str(rng.randrange(1, 30 if len(area) == 2 else 20))
    if area in ("EC", "WC", "W", "E") and rng.random() < 0.3:
        district = f"{rng.randrange(1, 4)}{rng.choice('ABCMNRSVWXY')}"
    inward = f"{rng.randrange(0, 10)}{rng.choice(_POSTCODE_LETTERS)}{rng.choice(_POSTCODE_LETTERS)}"
    return f"{area}{district} {inward}"


def format_postcode(rng: random.Random, postcode: str) -> str:
    kind = rng.random()
    if kind < 0.1:
        return postcode.replace(" ", "")
    if kind < 0.15:
        return postcode.lower()
    return postcode


_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def make_nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        if prefix not in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            break
    return f"{prefix}{rng.randrange(0, 1_000_000):06d}{rng.choice('ABCD')}"


def format_nino(rng: random.Random, nino: str) -> str:
    if rng.random() < 0.5:
        return f"{nino[:2]} {nino[2:4]} {nino[4:6]} {nino[6:8]} {nino[8]}"
    return nino


def make_hospital_number(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return f"R{rng.choice('RJQXW')}{rng.randrange(1, 10)}-{rng.randrange(1_000_000, 9_999_999)}"
    if kind == 1:
        return f"{rng.randrange(10_000_000, 99_999_999)}"
    if kind == 2:
        return f"{rng.choice('KHMRS')}{rng.randrange(1_000_000, 9_999_999)}"
    if kind == 3:
        return f"{rng.choice(('RTH', 'RWA', 'RHQ'))}{rng.randrange(100_000, 999_999)}"
    return f"H{rng.randrange(100_000, 999_999)}{rng.choice('ABCDEFGH')}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower().encode("ascii", "ignore").decode())


def make_email(rng: random.Random, person: Person, clinician: bool = False) -> str:
    first, last = _slug(person.first) or "x", _slug(person.last) or "y"
    if clinician:
        return f"{first}.{last}{rng.choice(('', '', '1', '2'))}@{rng.choice(CLINICIAN_DOMAINS)}"
    local = rng.choice(
        (
            f"{first}.{last}",
            f"{first[0]}{last}",
            f"{first}{rng.randrange(1, 99)}",
            f"{last}.{first}",
            f"{first}_{last}{rng.randrange(60, 99)}",
        )
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"


def make_url(rng: random.Random) -> str:
    return rng.choice(
        (
            f"https://myrecord.example.org/p/{rng.randrange(10_000, 99_999)}",
            f"www.example.net/clinic/{rng.randrange(100, 999)}",
            f"https://example.com/appointments?ref={rng.randrange(100_000, 999_999)}",
            f"http://patient-portal.example.org/u/{rng.randrange(1000, 9999)}",
            "https://www.example.org/leaflets/diabetes",
        )
    )


@dataclass
class Address:
    lines: tuple[str, ...]  # street lines then town
    postcode: str

    @property
    def one_line(self) -> str:
        return ", ".join(self.lines)


def make_address(rng: random.Random) -> Address:
    street = f"{rng.choice(STREET_WORDS)} {rng.choice(STREET_TYPES)}"
    town = rng.choice(TOWNS)
    kind = rng.random()
    if kind < 0.5:
        lines: list[str] = [f"{rng.randrange(1, 240)}{rng.choice(('', '', '', 'a', 'B'))} {street}"]
    elif kind < 0.7:
        lines = [
            f"Flat {rng.randrange(1, 40)}",
            f"{rng.choice(BLOCKS)}",
            f"{rng.randrange(1, 90)} {street}",
        ]
    elif kind < 0.85:
        lines = [rng.choice(HOUSE_NAMES), street]
    else:
        lines = [f"{rng.randrange(1, 120)} {street}", rng.choice(LOCALITIES)]
    lines.append(town)
    return Address(tuple(lines), make_postcode(rng))


# --- building a note ---------------------------------------------------------------------


@dataclass
class Builder:
    parts: list[str] = field(default_factory=list)
    pos: int = 0
    spans: list[GoldSpan] = field(default_factory=list)
    negatives: list[NegativeSpan] = field(default_factory=list)

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)

    def phi(self, s: str, label: str, source: str = "", role: str = "") -> None:
        if s != s.strip() or not s:
            raise ValueError("a gold span must not start or end with whitespace")
        self.spans.append(GoldSpan(self.pos, self.pos + len(s), label, source, role))
        self.text(s)

    def neg(self, s: str, cls: str) -> None:
        self.negatives.append(NegativeSpan(self.pos, self.pos + len(s), cls))
        self.text(s)

    def name(self, s: str, person: Person) -> None:
        self.phi(s, "PERSON", person.source, person.role)

    def build(self) -> str:
        return "".join(self.parts)


@dataclass
class Context:
    rng: random.Random
    patient: Person
    dob: dt.date
    nhs: str
    address: Address
    landline: tuple[str, str]
    mobile: str
    email: str
    hospital_number: str
    nino: str
    relatives: list[Person]
    clinicians: list[Person]
    when: dt.date

    def name_tokens(self) -> set[str]:
        out: set[str] = set()
        for person in (self.patient, *self.relatives, *self.clinicians):
            out |= person.tokens()
        return out

    @property
    def age(self) -> int:
        years = self.when.year - self.dob.year
        return years - ((self.when.month, self.when.day) < (self.dob.month, self.dob.day))


SlotFn = Callable[[Context, Builder], None]


def _person_forms(person: Person, ctx: Context, b: Builder, form: str) -> None:
    """Write ``person`` in the named form."""
    rng = ctx.rng
    if form == "full":
        b.name(person.full, person)
    elif form == "first":
        b.name(person.first, person)
    elif form == "last":
        b.name(person.last, person)
    elif form == "title":
        b.text(f"{person.title} ")
        b.name(person.last, person)
    elif form == "tfull":
        b.text(f"{person.title} ")
        b.name(person.full, person)
    elif form == "upper_rev":
        b.name(person.last.upper(), person)
        b.text(", ")
        b.name(person.first, person)
    elif form == "upper":
        b.name(person.full.upper(), person)
    elif form == "initial":
        b.name(f"{person.first[0]}.{rng.choice(('', ' '))}{person.last}", person)
    elif form == "tinitial":
        b.text(f"{person.title} ")
        b.name(f"{person.first[0]}{rng.choice(('', '.'))} {person.last}", person)
    elif form == "initials":
        b.name(f"{person.first[0]}{person.last[0]}".upper(), person)
    elif form == "lower":
        b.text(f"{person.title.lower()} ")
        b.name(person.last.lower(), person)
    elif form == "lower_full":
        b.name(person.full.lower(), person)
    elif form == "poss":
        b.name(person.first, person)
        b.text(rng.choice(("'s", "\u2019s")))
    elif form == "poss_title":
        b.text(f"{person.title} ")
        b.name(person.last, person)
        b.text("'s")
    else:  # pragma: no cover - a template error
        raise ValueError(f"unknown name form {form}")


_ANY_FORMS = ("full", "first", "title", "tfull", "upper_rev", "upper", "initial", "tinitial",
              "lower", "lower_full", "title", "full")  # fmt: skip


def _pronouns(person: Person) -> dict[str, str]:
    female = person.sex == "F"
    return {
        "he": "she" if female else "he",
        "He": "She" if female else "He",
        "his": "her" if female else "his",
        "His": "Her" if female else "His",
        "him": "her" if female else "him",
        "man": "woman" if female else "man",
        "gent": "lady" if female else "gentleman",
    }


def _negative(ctx: Context, b: Builder, pool: Sequence[str], cls: str) -> None:
    tokens = ctx.name_tokens()
    for _ in range(50):
        value = ctx.rng.choice(pool)
        words = {w.lower() for w in re.split(r"[^\w]+", value) if w}
        if not words & tokens:
            b.neg(value, cls)
            return
    b.neg(pool[0] if not ({w.lower() for w in pool[0].split()} & tokens) else "Ward 12", cls)


def _write_address(ctx: Context, b: Builder, block: bool, postcode: bool = True) -> None:
    lines = ctx.address.lines
    if block:
        for line in lines:
            b.phi(line, "ADDRESS")
            b.text("\n")
        if postcode:
            b.phi(format_postcode(ctx.rng, ctx.address.postcode), "UK_POSTCODE")
        return
    b.phi(", ".join(lines), "ADDRESS")
    if postcode:
        b.text(ctx.rng.choice((", ", " ", ",  ")))
        b.phi(format_postcode(ctx.rng, ctx.address.postcode), "UK_POSTCODE")


def _date_near(ctx: Context, days: int) -> dt.date:
    return ctx.when - dt.timedelta(days=ctx.rng.randrange(0, days))


def _slot(name: str, ctx: Context, b: Builder) -> None:
    rng = ctx.rng
    who, _, attr = name.partition(".")
    people = {"p": ctx.patient, "r": ctx.relatives[0], "r2": ctx.relatives[1],
              "c": ctx.clinicians[0], "c2": ctx.clinicians[1], "gp": ctx.clinicians[2]}  # fmt: skip
    if who in people:
        person = people[who]
        pron = _pronouns(person)
        if attr in pron:
            b.text(pron[attr])
        elif attr == "any":
            _person_forms(person, ctx, b, rng.choice(_ANY_FORMS))
        elif attr == "dr":
            b.text("Dr ")
            _person_forms(person, ctx, b, rng.choice(("last", "full", "initial", "last")))
        elif attr == "sig":
            b.text(rng.choice(("Dr ", "")))
            _person_forms(person, ctx, b, rng.choice(("full", "initial", "full")))
            b.text(rng.choice(("\n", ", ", "\n")))
            _negative(ctx, b, (person.job,) if person.job else ROLES, "role")
        elif attr == "job":
            _negative(ctx, b, (person.job,) if person.job else ROLES, "role")
        elif attr == "rel":
            b.text(person.relation)
        elif attr == "email":
            b.phi(person.email, "EMAIL")
        elif attr == "phone" and person.role != "patient":
            if person.role == "relative":
                b.phi(format_mobile(rng, person.phone), "PHONE")
            else:
                b.phi(format_landline(rng, *person.landline), "PHONE")
        elif attr == "Poss":
            _person_forms(person, ctx, b, "poss")
        elif attr == "surname_upper":
            b.name(person.last.upper(), person)
        elif attr in ("dob", "dob_any"):
            b.phi(format_date(rng, ctx.dob), "DATE_OF_BIRTH")
        elif attr == "nhs":
            b.phi(format_nhs(rng, ctx.nhs), "NHS_NUMBER")
        elif attr == "addr":
            _write_address(ctx, b, block=False)
        elif attr == "addr_block":
            _write_address(ctx, b, block=True)
        elif attr == "street":
            b.phi(
                ctx.address.lines[0] if len(ctx.address.lines) == 2 else ctx.address.lines[-2],
                "ADDRESS",
            )
        elif attr == "town":
            b.phi(ctx.address.lines[-1], "ADDRESS")
        elif attr == "pc":
            b.phi(format_postcode(rng, ctx.address.postcode), "UK_POSTCODE")
        elif attr == "phone":
            b.phi(format_landline(rng, *ctx.landline), "PHONE")
        elif attr == "mobile":
            b.phi(format_mobile(rng, ctx.mobile), "PHONE")
        elif attr == "hosp":
            b.phi(ctx.hospital_number, "HOSPITAL_NUMBER")
        elif attr == "nino":
            b.phi(format_nino(rng, ctx.nino), "UK_NINO")
        elif attr == "age":
            b.neg(rng.choice((f"{ctx.age}-year-old", f"{ctx.age} year old", f"{ctx.age}yo")), "age")
        elif attr == "aged":
            b.neg(rng.choice((f"aged {ctx.age}", f"age {ctx.age}", f"{ctx.age} y/o")), "age")
        elif attr == "title_word":
            b.text(person.title)
        else:
            _person_forms(person, ctx, b, attr)
        return
    if name in ("date", "today", "future", "old"):
        if name == "future":
            day = ctx.when + dt.timedelta(days=rng.randrange(7, 120))
        else:
            day = _date_near(ctx, {"date": 40, "today": 1, "old": 3000}[name])
        # The patient's own date of birth is DATE_OF_BIRTH wherever it appears.
        b.phi(format_date(rng, day), "DATE_OF_BIRTH" if day == ctx.dob else "DATE")
    elif name == "pdate":
        b.phi(format_partial_date(rng, _date_near(ctx, 900)), "DATE")
    elif name == "url":
        b.phi(make_url(rng), "URL")
    elif name == "drug":
        _negative(ctx, b, DRUGS, "drug")
    elif name == "drugs":
        for i in range(rng.randrange(2, 5)):
            b.text("; " if i else "")
            _negative(ctx, b, DRUGS, "drug")
    elif name == "lab":
        _negative(ctx, b, LABS, "lab")
    elif name == "labs":
        for i in range(rng.randrange(2, 5)):
            b.text(rng.choice((", ", ", ", "; ")) if i else "")
            _negative(ctx, b, LABS, "lab")
    elif name == "bp":
        b.neg(f"{rng.randrange(100, 185)}/{rng.randrange(55, 105)}", "bp")
    elif name == "score":
        _negative(ctx, b, SCORES, "score")
    elif name == "code":
        _negative(ctx, b, CODES, "code")
    elif name == "sh":
        _negative(ctx, b, SHORTHAND, "shorthand")
    elif name == "epo":
        _negative(ctx, b, EPONYMS, "eponym")
    elif name == "hospital":
        _negative(ctx, b, HOSPITALS, "hospital")
    elif name == "ward":
        _negative(ctx, b, WARDS, "ward")
    elif name == "role":
        _negative(ctx, b, ROLES, "role")
    elif name == "badnhs":
        b.text(f"{rng.choice(BATCH_WORDS)} ")
        b.neg(bad_nhs_number(rng), "bad_nhs")
    else:  # pragma: no cover - a template error
        raise ValueError(f"unknown slot {name}")


_ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
_SLOTS = re.compile(r"\{([a-z0-9_]+(?:\.[A-Za-z_]+)?)\}")


def render(template: str, ctx: Context, b: Builder) -> None:
    """Write ``template``: ``[a|b|c]`` picks one alternative (innermost first, ``[a|]`` is
    optional text), ``{slot}`` writes an annotated value, the rest is literal."""
    text = template
    while True:
        match = _ALTERNATIVES.search(text)
        if match is None:
            break
        choice = ctx.rng.choice(match.group(1).split("|"))
        text = text[: match.start()] + choice + text[match.end() :]
    pos = 0
    for match in _SLOTS.finditer(text):
        if match.start() > pos:
            b.text(text[pos : match.start()])
        _slot(match.group(1), ctx, b)
        pos = match.end()
    if pos < len(text):
        b.text(text[pos:])


# --- templates ---------------------------------------------------------------------------
#
# Each template is one kind of document; ``[a|b]`` and the slots vary its phrasing.

_ID_LINE = (
    "[Re|RE|Patient|Name|Pt]: {p.[full|upper_rev|tfull|upper|upper_rev]}"
    "[, |  |\n][DOB|D.O.B.|Date of birth|dob|DoB]: {p.dob}"
    "[, |  |\n][NHS No|NHS number|NHS no.|NHS|NHS No.]: {p.nhs}"
)
_ID_LINE_HOSP = _ID_LINE + "[, |\n][Hosp No|Hospital number|MRN|Unit No|RXR no.]: {p.hosp}"

TEMPLATES: tuple[tuple[str, str], ...] = (
    (
        "cardiology_clinic_letter",
        "Cardiology Outpatients, {hospital}\nDate: {today}\n\nDear {gp.dr},\n\n"
        + _ID_LINE_HOSP
        + "\n{p.addr}\n\nDiagnosis: [paroxysmal AF|heart failure with reduced EF|stable angina]"
        " ({code})\n\nI saw {p.[title|first|tfull]} [today|in clinic today|in the rapid access"
        " chest pain clinic] [with {p.his} {r.rel}, {r.[first|full|title]}|alone|]. {p.He} is a"
        " {p.age} who reports [palpitations|breathlessness on exertion|chest tightness] over the"
        " last {sh}. BP {bp}, HR 72 irregular. ECG [AF at 88 bpm|sinus rhythm]. Bloods: {labs}."
        "\n\nPlan: start {drug} and continue {drug}. [Echo requested.|We will repeat the"
        " echo in {sh}.] I will see {p.him} again on {future}.\n\nYours sincerely\n\n{c.sig}"
        "\n[cc: {p.tfull}, {p.addr}|cc: patient]",
    ),
    (
        "diabetes_clinic_letter",
        "Diabetes Centre\n[Clinic date|Seen]: {today}\n"
        + _ID_LINE
        + "\n\nDear Dr {gp.last}\n\nThank you for referring {p.[first|title|full]}, a {p.age}"
        " with type 2 diabetes ({code}). [{p.Poss}|{p.His}] HbA1c has risen; today {lab},"
        " {lab}. {p.He} takes {drugs}. BP {bp}. Foot check normal. [{p.He} asked me to email"
        " {p.him} at {p.email}.|{p.His} {r.rel} {r.first} helps with [meals|insulin].|]"
        "\n\nWith best wishes\n{c.sig}\n{c.email}",
    ),
    (
        "respiratory_clinic_letter",
        "Respiratory Medicine, {hospital}\n\nDear Dr {gp.last},\n\n"
        "{p.upper_rev}   DOB {p.dob}   NHS {p.nhs}\n\n"
        "Diagnoses: COPD ({code}); [{epo}|obstructive sleep apnoea]\nMedication: {drugs}\n\n"
        "{p.[title|first]} attended [with {p.his} {r.rel} {r.any}|on {p.his} own] on {date}."
        " [Spirometry FEV1 1.4 L.|FEV1/FVC 0.61.] Sats 93% on air, {score}. [{p.He} still smokes"
        " 10/day.|Ex-smoker.] We discussed pulmonary rehab at {hospital}.\n\n{c.sig}",
    ),
    (
        "rheumatology_letter",
        "Rheumatology Department\nTel: {c.phone}\n\n{today}\n\nPrivate and confidential\n"
        "{p.tfull}\n{p.addr_block}\n\nDear {p.title},\n\nThank you for coming to clinic."
        " Your {lab} and {lab} are [improving|stable]. Please continue {drug} with {drug}."
        " Your next blood test is due in {sh}. If you have questions, ring the advice line or"
        " email {c.email}.\n\nYours sincerely,\n\n{c.sig}\ncc Dr {gp.last}, [GP|general"
        " practitioner]",
    ),
    (
        "neurology_letter",
        "Dear {gp.dr}\n\nRe: {p.[tfull|upper_rev]} ({p.dob})  {p.nhs}\n{p.addr}\n\n"
        "Diagnosis: {epo}\n\nI reviewed {p.[first|title]} with {p.his} {r.rel}"
        " {r.[first|full]} on {date}. {p.He} [is a|was a] {p.age} [with a tremor|with"
        " right-sided weakness] since {pdate}. {score}. MRI at {hospital} showed [small vessel"
        " disease|no acute change]. I have started {drug}.\n\n{c.sig}\n{c.email}",
    ),
    (
        "discharge_summary_medical",
        "DISCHARGE SUMMARY\nPatient: {p.upper_rev}\nHospital No: {p.hosp}\nNHS: {p.nhs}\n"
        "DOB: {p.dob}\nAddress: {p.addr}\nAdmitted: {date}   Discharged: {today}\n"
        "Ward: {ward}\nConsultant: {c.dr}\n\nPresenting complaint: [fall at home|shortness"
        " of breath|confusion]\nDiagnosis: [community-acquired pneumonia|UTI with delirium|"
        "decompensated heart failure] ({code})\nPMH: {epo}; [T2DM|HTN|CKD 3a]\n\n"
        "{p.[first|title]} was treated with {drug}. Admission bloods {labs}. {score} on"
        " arrival. [{p.His} {r.rel} {r.full} ({r.phone}) is next of kin.|NOK: {r.rel},"
        " {r.full}, tel {r.phone}.]\n\nMedication on discharge: {drugs}\nFollow-up: GP"
        " review in {sh}.\n\nCompleted by {c2.any}, {c2.job}",
    ),
    (
        "discharge_summary_surgical",
        "Surgical Discharge Letter - {hospital}\n\n{p.[full|upper|upper_rev]}"
        " | {p.dob} | {p.nhs} | MRN: {p.hosp}\n\nOperation: [laparoscopic cholecystectomy"
        "|inguinal hernia repair|right hemicolectomy] ({code}) on {date} by {c.dr},"
        " {c.job}.\nPost-op: [uneventful|ileus resolved by day 3]. {score} on day 1.\n"
        "Discharged to [home|{p.addr}] with {p.his} {r.rel}.\nTTOs: {drugs}\n"
        "Clips out at [the practice|{p.his} GP surgery] in {sh}.",
    ),
    (
        "gp_consultation_note",
        "[Surgery consultation|F2F consultation|GP consultation] {today} - {gp.dr}\n"
        "{p.[full|first|title]} ({p.aged}) [attends|came in] [with {p.his} {r.rel}"
        " {r.first}|alone]. C/O [cough|low back pain|low mood|headaches] for {sh}."
        " [Hx of {epo}.|] O/E: BP {bp}, {lab}. Imp: [viral URTI|mechanical back pain|"
        "depression] ({code}). Plan: {drug}, review {sh}. [Pt's mobile {p.mobile}"
        " confirmed.|Contact number updated to {p.phone}.|]",
    ),
    (
        "gp_telephone_consult",
        "Telephone consultation {today} [10:40|14:15|]\nSpoke to {p.[first|title|tfull|lower]}"
        " on {p.[mobile|phone]}. [ID checked: DOB {p.dob}.|Identity confirmed with DOB {p.dob}"
        " and first line of address ({p.street}).] Reports {drug} causing nausea. Switched."
        " Advised to call back if worse. {gp.initials}",
    ),
    (
        "referral_2ww",
        "URGENT SUSPECTED CANCER REFERRAL\n\nTo: [Colorectal|Breast|Lung|Skin] 2WW,"
        " {hospital}\nFrom: {gp.dr}, {gp.email}\n\nPatient: {p.tfull}\nDOB: {p.dob}"
        "\nNHS number: {p.nhs}\nAddress: {p.addr}\nTel: {p.phone}   Mobile: {p.mobile}"
        "\nEmail: {p.email}\n\n{p.Poss} [weight loss|rectal bleeding|haemoptysis] over {sh}."
        " {labs}. Past history {epo}. Please contact {p.his} {r.rel} {r.any} on {r.phone} if"
        " {p.he} cannot be reached.",
    ),
    (
        "referral_orthopaedics",
        "Dear Colleague,\n\nI would be grateful if you could see this {p.age}, {p.tinitial}"
        " of {p.addr}, with [right knee|left hip] pain since {pdate}. X-ray on {date} showed"
        " [moderate OA|joint space narrowing]. {p.He} has tried {drug} and {drug}. [{p.He}"
        " lives with {p.his} {r.rel}, {r.full}.|] {p.Poss} NHS number is {p.nhs}.\n\n"
        "Kind regards\n{gp.sig}",
    ),
    (
        "nursing_admission_note",
        "Nursing admission assessment - {ward}, {hospital}\n{p.upper_rev}, {p.hosp}\n"
        "Admitted {today} from [ED|home|GP]. Prefers to be called {p.first}. Lives at"
        " {p.addr} [alone|with {p.his} {r.rel} {r.first}]. NOK {r.full} {r.phone}."
        " {score}, Waterlow 12, MUST 0. Allergies: penicillin. Obs: BP {bp}, HR 90.\n"
        "[Staff Nurse|SN|RN] {c2.[last|full]}",
    ),
    (
        "nursing_shift_note",
        "[Night|Day|Late] shift: {p.[first|title|lower]} [settled|slept well|unsettled"
        " overnight], {score}. BP {bp}. [Given {drug}.|{drug} given at 22:00.]"
        " {p.Poss} {r.rel} rang at 21:00 and asked for an update; [spoke with|updated]"
        " {r.[first|title]}. [Plan for discharge {future}.|Awaiting {lab}.] - {c2.any}",
    ),
    (
        "safeguarding_adult",
        "SAFEGUARDING CONCERN - ADULT\nDate: {today}\nAdult at risk: {p.tfull}, {p.aged},"
        " DOB {p.dob}\nAddress: {p.addr}\nNHS: {p.nhs}\n\nConcern raised by {c2.any}"
        " ({c2.job}) after {p.first} disclosed that {p.his} {r.rel}, {r.full}, [takes {p.his}"
        " pension|has pushed {p.him}]. [{r.first} was not present.|] Referral made to the local"
        " authority; social worker {r2.full} informed on {r2.phone}. {p.Poss} capacity"
        " assessed, MMSE 26/30.",
    ),
    (
        "safeguarding_child",
        "Safeguarding children - record of discussion {today}\nChild: {p.full}, DOB {p.dob},"
        " NHS {p.nhs}\nMother/carer: {r.full} ({r.rel}), {r.phone}\nAddress: {p.addr}"
        "\n\n{p.first} ({p.aged}) was brought to ED by {r.first} with a"
        " [spiral fracture|bruise to the cheek]. Discussed with {c.dr} and health visitor"
        " {c2.any}. [School: informed.|] Strategy meeting {future}.",
    ),
    (
        "radiology_ct",
        "CT [HEAD|CHEST ABDOMEN PELVIS|PULMONARY ANGIOGRAM]\nPatient: {p.upper_rev}   MRN:"
        " {p.hosp}   DOB: {p.dob}\nRequested by: {c2.dr}\nExam date: {date}\n\n"
        "Clinical details: [?PE, Wells score 5|weight loss|fall, on {drug}]\n\n"
        "Findings: [No acute intracranial abnormality.|Filling defects in segmental arteries.|"
        "2.3 cm mass in the right upper lobe.] [{epo}-related changes noted.|]\n\n"
        "Reported by {c.dr}, {c.job}, {today}",
    ),
    (
        "radiology_xray",
        "XR [CHEST|LEFT WRIST|PELVIS] - {p.[full|upper]} ({p.hosp}) - {date}\n"
        "[Colles' fracture.|No fracture.|Mild cardiomegaly.] [Compared with {old}.|]"
        " Reported: {c.any}",
    ),
    (
        "histopathology",
        "HISTOPATHOLOGY REPORT\nSurname: {p.surname_upper}\nForename: {p.first}\nDOB: {p.dob}"
        "   NHS: {p.nhs}\nReagent {badnhs}\nSpecimen received: {date}\n\nMacroscopy:"
        " [skin ellipse 22 x 9 mm|colonic polyp 8 mm]. Microscopy: [basal cell carcinoma,"
        " completely excised|tubular adenoma, low-grade dysplasia]. {code}.\n\n{c.sig}",
    ),
    (
        "lab_result_comment",
        "Result for {p.[full|upper_rev|title]} ({p.nhs}) received {today}: {labs}."
        " [Normal, no action.|Abnormal: {gp.dr} to call {p.him} on {p.[mobile|phone]}.|"
        "Repeat in {sh}.]",
    ),
    (
        "telephone_call_relative",
        "Telephone call {today}\n{r.[full|tfull]} ({p.Poss} {r.rel}) rang [the ward|the"
        " practice] on {r.phone} [asking for an update|to report {p.he} had fallen]. Consent to"
        " share confirmed on file. Informed {r.first} that {p.[first|title]} is [medically"
        " fit|being treated with {drug}]. [Call back requested on {r.phone}.|] {c2.any}",
    ),
    (
        "mdt_oncology",
        "[Lung|Upper GI|Colorectal|Haematology] MDT {today}\nPresent: {c.dr}, {c2.dr},"
        " {gp.dr}\n\n{p.upper_rev} {p.dob} {p.nhs} {p.hosp}\nHistology: [adenocarcinoma|"
        "{epo}]; staging CT {date}. {score}. Outcome: [for surgery|for palliative"
        " chemotherapy|for further imaging]. CNS {c2.first} to phone {p.first} on"
        " {p.[mobile|phone]}.",
    ),
    (
        "mdt_stroke",
        "Stroke MDT - {ward}\n{p.[tfull|upper_rev]} ({p.aged}). NIHSS 6 on admission,"
        " {score}. [Thrombolysed|Not for thrombolysis]. Speech: [mild dysphasia|normal]. "
        "Physio ({c2.any}): mobilising with frame. OT: home visit to {p.addr} booked"
        " {future}. {p.Poss} {r.rel} {r.first} happy to help. Started {drug}.",
    ),
    (
        "prescription",
        "PRESCRIPTION\n{p.tfull}\n{p.addr_block}\nDOB {p.dob}   NHS {p.nhs}\n\n"
        "Rx: {drug}\nRx: {drug}\nSupply 28 days\n\nPrescriber: {gp.sig}   Date: {today}",
    ),
    (
        "repeat_request",
        "Repeat prescription request from {p.[full|title|lower_full]} [via the online"
        " portal|by phone|left at reception] {today}: {drugs}. [Collect from the pharmacy.|"
        "Please send to the pharmacy near {p.street}.] Contact {p.email}.",
    ),
    (
        "ae_note",
        "ED clinician note {today}\n{p.upper_rev}, {p.age}, {p.hosp}\nPC: [fall|chest"
        " pain|SOB] [from home|brought by ambulance]. Hx via {p.his} {r.rel} {r.[any|first]}."
        " PMH {epo}. DH {drugs}. O/E {score}, BP {bp}, {lab}. Imp: [NOF fracture|ACS|"
        "exacerbation of COPD]. Plan: admit under {c.dr} to {ward}. [Seen with {c2.dr}.|]",
    ),
    (
        "ae_triage",
        "TRIAGE {today} [Cat 2|Cat 3|Majors]: {p.[full|upper]} (DOB {p.dob}) {p.aged}."
        " Presenting: [wrist injury|abdominal pain|head injury]. {score}. Obs BP {bp}."
        " Escort: {r.rel} {r.any}, contact {r.phone}.",
    ),
    (
        "mental_health_assessment",
        "Mental Health Assessment\nName: {p.full}   DOB: {p.dob}   NHS: {p.nhs}\n"
        "Address: {p.addr}\nPhone: {p.mobile}\n\n{p.first} is a {p.age} seen with"
        " [{p.his} {r.rel}, {r.title}|care coordinator {c2.any}] on {date}. PHQ-9 19, GAD-7 15."
        " [Low mood since {pdate}.|Thoughts of self-harm, no plan.] Medication: {drug}."
        " Risk: [moderate|low]. Plan: follow-up with {c.dr}, {c.job}, in {sh}.",
    ),
    (
        "mental_health_crisis",
        "Crisis team contact {today}: {p.[first|title|lower]} rang {c2.first} from"
        " {p.[mobile|phone]}, distressed after argument with {p.his} {r.rel} {r.first}."
        " [Safety plan reviewed.|Home visit to {p.addr} arranged.] [Taking {drug}.|Not"
        " taking {drug}.] {score}.",
    ),
    (
        "cpn_visit",
        "CPN home visit {today} - {p.addr}\nSeen {p.[first|title]} with {p.his"
        "} {r.rel}. {p.He} [appeared settled|was guarded]. Depot [given|declined].  {drug}."
        " Next visit {future}. {c2.[full|initial]} ({c2.job})",
    ),
    (
        "midwifery_booking",
        "Antenatal booking {today}\n{p.upper_rev}, DOB {p.dob}, NHS {p.nhs}\nAddress:"
        " {p.addr}\nMobile: {p.mobile}\nPartner: {r.full}\nG2P1, LMP {pdate}, EDD"
        " {future}. BMI 27. BP {bp}. {lab}. [Booking bloods taken.|] Named midwife"
        " {c2.any}, {c2.email}.",
    ),
    (
        "postnatal_visit",
        "Postnatal visit day 5 at {p.addr}. {p.[first|title]} and baby well; baby feeding"
        " [well|2-3 hourly]. {p.His} partner {r.first} present. BP {bp}. [Perineum healing.|]"
        " Baby weight 3.2 kg. Next contact {future}. MW {c2.any}",
    ),
    (
        "physio_note",
        "Physiotherapy - {date}\n{p.[full|title]} ({p.hosp}). [L knee TKR day 2.|Low back"
        " pain {sh}.] Mobilising with frame, {score}. Exercises given [and emailed to"
        " {p.email}|]. Review {future}. {c2.[full|initial]}, {c2.job}",
    ),
    (
        "ot_home_visit",
        "OT home visit {today} to {p.addr}\n{p.tfull} lives in a [terraced house|ground floor"
        " flat|bungalow] with {p.his} {r.rel} {r.any}. Barthel 70/100. Rails fitted."
        " [Key safe code held by {r.first}.|] {c2.any}",
    ),
    (
        "pharmacy_med_review",
        "Structured medication review {today} with {p.[first|title|full]} by {c2.any},"
        " {c2.job}.\nCurrent: {drugs}.\n{lab}; {lab}. [Stopped {drug}.|Reduced {drug}.]"
        " Discussed {epo}. [Patient's {r.rel} {r.first} manages the dosette.|] Phone {p.phone}.",
    ),
    (
        "ooh_note",
        "OOH [home visit|telephone triage] {today} 23:10\nCaller: {r.[full|title]} ({r.rel})"
        " {r.phone}\nPatient: {p.full}, {p.dob}, at {p.addr}\n[Pyrexia|Vomiting|Breathless],"
        " {score}. Advised {drug}; [999 if worse|GP follow-up {future}]. {c.[dr|any]}",
    ),
    (
        "district_nurse_visit",
        "DN visit {today}: {p.[title|first|lower]} at {p.addr_block}\nLeg ulcer dressing"
        " changed, [healing|static]. Waterlow 18. {drug}. Next visit {future}. {c2.any}",
    ),
    (
        "dietitian_letter",
        "Dear {p.[title|first]},\n\nIt was good to meet you [and your {r.rel} {r.first}|]"
        " on {date}. We agreed a target of 1800 kcal and {drug}. Your {lab} was [high|ok]."
        " [Useful advice at {url}.|] Please ring {c.phone} with any questions.\n\n{c2.sig}",
    ),
    (
        "paediatric_letter",
        "Paediatrics, {hospital}\n\nDear {gp.dr}\n\nRe: {p.full}  DOB: {p.dob}  NHS:"
        " {p.nhs}\nParent: {r.full} ({r.rel}), {r.phone}\n{p.addr}\n\n{p.first} was"
        " seen with {p.his} {r.rel} on {date} for [recurrent wheeze|constipation|poor weight"
        " gain]. Weight on 9th centile. {score}. Plan: {drug}. Review in {sh}.\n\n{c.sig}",
    ),
    (
        "ophthalmology_letter",
        "Eye Clinic {today}\n{p.upper_rev} {p.hosp}\nVA R 6/9 L 6/12. IOP 18/20. [Dry"
        " AMD|Cataract|Diabetic maculopathy] ({code}). [Listed for phaco.|] {c.any}",
    ),
    (
        "ent_letter",
        "ENT clinic, {hospital}, {today}\n\nDear {gp.dr},\n\nI saw {p.tinitial}, {p.age},"
        " ({p.nhs}) with [unilateral hearing loss|recurrent tonsillitis|{epo}]. [MRI IAMs"
        " requested.|] {drug}. Review {future}.\n\n{c.sig}",
    ),
    (
        "palliative_note",
        "Palliative care review {today}\n{p.[title|first]} ({p.aged}) at [home|the"
        " hospice], {p.addr}. Family present: {r.rel} {r.any} and {r2.rel} {r2.any}."
        " [Syringe driver: {drug}.|{drug} for pain.] DNACPR in place. Preferred place of"
        " death: home. {c.dr}",
    ),
    (
        "ambulance_handover",
        "Ambulance handover {today} [14:32|03:05|]: {p.[full|upper]} {p.age} from {p.addr}."
        " Found on floor by {r.rel} {r.first}. {score}, BP {bp}. Given {drug}. Crew:"
        " {c2.any}.",
    ),
    (
        "social_care_referral",
        "Referral to adult social care {today}\nName: {p.full}\nDOB: {p.dob}\nNI number:"
        " {p.nino}\nAddress: {p.addr}\nTel: {p.phone}\nNext of kin: {r.full}, {r.rel},"
        " {r.phone}\n\nNeeds: package of care 2x daily. {p.first} has {epo}. Referred by"
        " {c2.any}, {c2.job}.",
    ),
    (
        "patient_email",
        "From: {p.email}\nSent: {today}\nTo: {gp.email}\nSubject: [blood test|my"
        " prescription|sick note]\n\nDear Dr {gp.last},\nI'm still taking {drug} but"
        " [the cough is back|my BP was {bp} at home]. Could you ring me on {p.mobile}? My"
        " portal link is {url}.\nThanks, {p.[first|full]}",
    ),
    (
        "change_of_details",
        "Admin {today}: {p.[full|upper_rev]} ({p.nhs}) has moved. New address:"
        " {p.addr}. [New mobile {p.mobile}.|Home phone {p.phone}.] Email {p.email}."
        " [NI {p.nino}.|] [Previous address archived.|]",
    ),
    (
        "fit_note",
        "Fit note issued {today} to {p.tfull}, NI no. {p.nino}, for {sh}: [{epo}|low back"
        " pain|stress at work]. [Assessed by telephone {p.phone}.|] Review {future}. {gp.dr}",
    ),
    (
        "appointment_letter",
        "{p.tfull}\n{p.addr_block}\n\n{today}\n\nDear {p.title},\n\nYour appointment"
        " with {c.dr} is on {future} at [Outpatients B|the Day Unit], {hospital}. Please"
        " bring your medicines ({drug}). Hospital number: {p.hosp}. To rearrange, call"
        " {c.phone} or visit {url}.",
    ),
    (
        "health_visitor_note",
        "HV contact {today}: {p.first} ({p.dob}) seen at home with {p.his} {r.rel},"
        " {r.[full|first]}. Weight 9.4 kg. Immunisations up to date, {badnhs}. {r.first} is"
        " [coping well|tired]; partner {r2.first}. Next review {future}. {c2.any}",
    ),
    (
        "vaccination_record",
        "[Flu|COVID-19|Shingles] vaccine given {today} to {p.[full|upper_rev]}, DOB {p.dob},"
        " {badnhs}. Left deltoid. No reaction. Given by {c2.any}. [Recall {future}.|]",
    ),
    (
        "clinic_letter_to_patient",
        "Dear {p.first},\n\nThank you for seeing me on {date}. As discussed, your {lab} is"
        " [a little high|normal] and your blood pressure was {bp}. Please take {drug}. I"
        " have written to {gp.dr}. [Your {r.rel} {r.first} is welcome next time.|]"
        "\n\nBest wishes\n\n{c.sig}\n{c.email}",
    ),
)


def _relation(rng: random.Random, patient: Person, age: int) -> tuple[str, str]:
    """(relation word, sex of the relative)."""
    if age < 18:
        return rng.choice(
            (
                ("mother", "F"),
                ("father", "M"),
                ("grandmother", "F"),
                ("foster carer", "F"),
                ("stepfather", "M"),
            )
        )
    return rng.choice(
        (
            ("daughter", "F"),
            ("son", "M"),
            ("wife" if patient.sex == "M" else "husband", "F" if patient.sex == "M" else "M"),
            ("partner", rng.choice("MF")),
            ("sister", "F"),
            ("brother", "M"),
            ("neighbour", rng.choice("MF")),
            ("niece", "F"),
        )
    )


def _context(rng: random.Random, template_name: str) -> Context:
    child = template_name in ("paediatric_letter", "safeguarding_child", "health_visitor_note")
    maternity = template_name in ("midwifery_booking", "postnatal_visit")
    when = dt.date(2023, 1, 1) + dt.timedelta(days=rng.randrange(0, 900))
    if child:
        age_days = rng.randrange(60, 16 * 365)
    elif maternity:
        age_days = rng.randrange(18 * 365, 43 * 365)
    else:
        age_days = rng.randrange(19 * 365, 89 * 365)
    dob = when - dt.timedelta(days=age_days)
    patient = make_person(rng, "patient", "F" if maternity else None)
    if child:
        patient.title = "Master" if patient.sex == "M" else "Miss"
    ctx_age = age_days // 365
    relatives = []
    for _ in range(2):
        relation, sex = _relation(rng, patient, ctx_age)
        relative = make_person(rng, "relative", sex)
        family = relation in ("wife", "husband", "son", "daughter", "mother", "father")
        if family and relative.source == patient.source and rng.random() < 0.7:
            relative.last = patient.last
        relative.relation = relation
        relative.phone = make_mobile(rng)
        relative.email = make_email(rng, relative)
        relatives.append(relative)
    clinicians = []
    for job_pool in (
        ROLES[:4] + ROLES[8:9] + ROLES[22:],
        ROLES[4:8] + ROLES[9:15],
        ("General Practitioner",),
    ):
        clinician = make_person(rng, "clinician")
        clinician.job = rng.choice(job_pool)
        clinician.email = make_email(rng, clinician, clinician=True)
        clinician.landline = make_landline(rng)
        clinicians.append(clinician)
    patient.email = make_email(rng, patient)
    return Context(
        rng=rng,
        patient=patient,
        dob=dob,
        nhs=make_nhs_number(rng),
        address=make_address(rng),
        landline=make_landline(rng),
        mobile=make_mobile(rng),
        email=patient.email,
        hospital_number=make_hospital_number(rng),
        nino=make_nino(rng),
        relatives=relatives,
        clinicians=clinicians,
        when=when,
    )


def _known(ctx: Context) -> dict[str, Any] | None:
    rng = ctx.rng
    if rng.random() < KNOWN_ABSENT_SHARE:
        return None

    def keep() -> bool:
        return rng.random() < KNOWN_FIELD_SHARE

    area, sub = ctx.landline
    known: dict[str, Any] = {
        "names": [ctx.patient.first, ctx.patient.last],
        "relatives": [r.full for r in ctx.relatives if r.relation != "neighbour" and keep()],
        "nhs_number": ctx.nhs if keep() else None,
        "date_of_birth": ctx.dob.isoformat() if keep() else None,
        "address": ctx.address.one_line if keep() else None,
        "postcode": ctx.address.postcode if keep() else None,
        "phones": [p for p in (f"0{area}{sub}", f"0{ctx.mobile}") if keep()],
        "emails": [ctx.email] if keep() else [],
        "hospital_numbers": [ctx.hospital_number] if keep() else [],
    }
    if rng.random() > KNOWN_FIELD_SHARE:
        known["names"] = [ctx.patient.last]
    return known


def make_note(seed: int, index: int) -> Note:
    """Note ``index`` of the corpus with ``seed``: templates in turn, so all are used."""
    rng = random.Random(f"deid-corpus:{seed}:{index}")
    name, template = TEMPLATES[(index + seed) % len(TEMPLATES)]
    ctx = _context(rng, name)
    b = Builder()
    render(template, ctx, b)
    text = b.build()
    return Note(
        id=f"{seed}-{index:05d}",
        template=name,
        text=text,
        known=_known(ctx),
        spans=tuple(b.spans),
        negatives=tuple(b.negatives),
    )


def generate(split: str = "dev", n: int = DEFAULT_NOTES) -> list[Note]:
    """The ``split`` corpus: ``n`` notes, deterministic for the split's seed."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLIT_SEEDS)}")
    seed = SPLIT_SEEDS[split]
    return [make_note(seed, i) for i in range(n)]


NEGATIVE_TEMPLATES: tuple[str, ...] = (
    "Started {drug} and {drug}.",
    "Bloods: {labs}.",
    "BP {bp}, HR 78, {score}.",
    "Coded as {code}; review in {sh}.",
    "Known {epo}, stable.",
    "Transferred from {hospital} to {ward}.",
    "Reviewed by the {role} on {ward}.",
    "Symptoms for {sh}, worse over the last {sh}.",
    "{drug}; {lab}; BP {bp}.",
    "History of {epo} and {epo}.",
    "Vaccine given, {badnhs}.",
    "Seen at {hospital} by the {role}: {score}, {score}.",
    "Diagnosis {code} ({epo}).",
    "{role} advised {drug}.",
    "Repeat {lab} in {sh}; if {lab} falls, stop {drug}.",
    "A {p.age} with {epo}, BP {bp}.",
)


def negative_sentences(split: str = "dev", n: int = 200) -> list[Note]:
    """Sentences made only of hard negatives (no identifier at all)."""
    seed = SPLIT_SEEDS[split] + 1
    out: list[Note] = []
    for i in range(n):
        rng = random.Random(f"deid-negatives:{seed}:{i}")
        ctx = _context(rng, "negatives")
        ctx.relatives = [ctx.relatives[0], ctx.relatives[1]]
        b = Builder()
        render(NEGATIVE_TEMPLATES[i % len(NEGATIVE_TEMPLATES)], ctx, b)
        if b.spans:  # pragma: no cover - a template error
            raise ValueError("a negative sentence has an identifier")
        out.append(
            Note(f"neg-{seed}-{i:04d}", "negatives", b.build(), None, (), tuple(b.negatives))
        )
    return out


def iter_jsonl(notes: Sequence[Note]) -> Iterator[str]:
    for note in notes:
        yield json.dumps(note.to_json(), ensure_ascii=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="dev")
    parser.add_argument("--n", type=int, default=DEFAULT_NOTES)
    parser.add_argument("--negatives", action="store_true", help="write the negative sentences")
    parser.add_argument("--out", default="-")
    args = parser.parse_args(argv)
    notes = negative_sentences(args.split) if args.negatives else generate(args.split, args.n)
    lines = "\n".join(iter_jsonl(notes)) + "\n"
    if args.out == "-":
        sys.stdout.write(lines)
    else:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
