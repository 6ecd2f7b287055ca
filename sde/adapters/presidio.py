"""Free-text de-identification with Presidio, pattern recognizers only (no spaCy model).

What is found and replaced with a typed placeholder (``<PERSON>``, ``<NHS_NUMBER>``...):

- the patient's own identifiers, passed in as *known* values (name, NHS number, date of
  birth, address, town, postcode, phone, email, local identifiers), in any layout: NHS
  numbers and phone numbers with or without spaces, dashes or dots; dates of birth as
  ``1980-03-07``, ``07/03/1980``, ``7 March 1980``, ``March 7th, 1980``...; names in any
  case. Stock Presidio finds no names without an NLP model, so known values are what
  remove the patient's name;
- other people's names where a title, a relation or a label introduces them (``Dr
  Okafor``, ``Mrs J. Patel``, ``Sister Jones``, ``his wife Mary``, ``Dear Anne``, ``Re:
  KNIGHT, Martin``, a signature after ``Yours sincerely``), and every later capitalised
  mention of a name found ("Martin attended...");
- NHS numbers (Modulus 11), UK phone numbers, emails, UK postcodes, National Insurance
  numbers, hospital numbers, long digit runs, street addresses, and dates.

Only the entities listed in ``ENTITIES`` are asked for (stock Presidio reads NHS numbers
as phone numbers and "M1" as a US driver's licence). Asking for an entity no recognizer
provides is an error, not a warning: detecting less than asked is a privacy failure. The
engine is built once (about 2 ms per letter afterwards) and checks itself on a canary
letter before first use.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sde.domain import nhs_number
from sde.domain.datasets import Pii

# EmailRecognizer's tldextract would fetch the public suffix list from the network when
# first used. This module never uses that path (see _EmailRecognizer), and the default
# extractor is told not to fetch either, in case another caller does.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import (
    AnalyzerEngine,
    ContextAwareEnhancer,
    EntityRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    DateRecognizer,
    EmailRecognizer,
    NhsRecognizer,
    PhoneRecognizer,
    UkNinoRecognizer,
    UkPostcodeRecognizer,
)

LANGUAGE = "en"

# Entity -> placeholder. Earlier entries win when findings overlap.
PLACEHOLDERS: dict[str, str] = {
    "UK_NHS": "<NHS_NUMBER>",
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "UK_NINO": "<UK_NINO>",
    "IDENTIFIER": "<IDENTIFIER>",
    "DATE_TIME": "<DATE>",
    "UK_POSTCODE": "<UK_POSTCODE>",
    "ADDRESS": "<ADDRESS>",
    "PERSON": "<PERSON>",
    "LOCATION": "<LOCATION>",
}
# Entities the analyzer is asked for; LOCATION (a town) comes from known values only.
ENTITIES = tuple(e for e in PLACEHOLDERS if e != "LOCATION")
_PRIORITY = {entity: rank for rank, entity in enumerate(PLACEHOLDERS)}

_KNOWN_ENTITY = {
    Pii.NHS_NUMBER: "UK_NHS",
    Pii.PERSON: "PERSON",
    Pii.DATE: "DATE_TIME",
    Pii.ADDRESS: "ADDRESS",
    Pii.LOCATION: "LOCATION",
    Pii.POSTCODE: "UK_POSTCODE",
    Pii.PHONE: "PHONE_NUMBER",
    Pii.EMAIL: "EMAIL_ADDRESS",
    Pii.IDENTIFIER: "IDENTIFIER",
}

# --- pattern building blocks -------------------------------------------------------------

_TITLES = (
    r"(?:Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sister|Nurse|Matron|Rev|Revd|Sir|Dame"
    r"|Lady|Lord)\.?"
)
# Letters for names: ASCII and Latin-1/Latin Extended-A (Ó Briain, Łukasz, Kazlauskienė).
_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de\u0100-\u024f"
_LOW = "a-z\u00df-\u00f6\u00f8-\u00ff\u0100-\u024f"
# Capitalised words that follow a title or a label but are not names.
_NOT_NAMES = (
    r"(?!(?:Colleagues?|Sir|Madam|Doctor|Practitioner|Specialist|Consultant|Registrar|Team"
    r"|Manager|Lead|Clinic|Service|Unit|Department|Hospital|Hosp|Tel|Telephone|Mobile"
    r"|Email|Address|NHS|DOB|DoB|MRN|GP|BP|HR|MDT|ECG|MRI|CT|FBC|CRP|OPCS|ICD)(?![\w]))"
)
_PARTICLE = r"(?:ap|da|das|de|del|della|der|di|do|dos|du|van|von|den|la|le|bin|ibn|al|el|ter)"
# A capitalised name word (Smith, McDonald, O'Brien, Smith-Jones, SMITH, da Silva) or an
# initial (J.). Lower case only after the first capital, so clinical tokens (HbA1c) never
# match; capitals-only words only where a title or label introduces a name.
_CAPITALISED = rf"[{_UP}][{_LOW}]*(?:[{_UP}][{_LOW}]+)?(?:['\u2019\-][{_UP}]?[{_LOW}]+)*"
_CAPITALS = rf"[{_UP}](?:[{_UP}]|['\u2019\-][{_UP}])+"
_WORD = (
    rf"(?:{_NOT_NAMES}(?:[{_UP}]\.|(?:{_PARTICLE}[ \t])?(?:{_CAPITALISED}|{_CAPITALS})"
    r"(?![\w'\u2019])))"
)
# One to three words, single-spaced (a double space separates fields in letter headers),
# or "SURNAME, Given".
_NAMES = rf"(?P<pii>{_NOT_NAMES}{_CAPITALS},[ \t]{_WORD}|{_WORD}(?:[ \t]{_WORD}){{0,2}})"
# After "Re:", "Patient:", "Name:" the words are the name whatever their case.
_ANY_WORD = rf"(?:{_NOT_NAMES}[{_UP}{_LOW}]+(?:['\u2019\-][{_UP}{_LOW}]+)*(?![\w'\u2019]))"
_ANY_NAMES = rf"(?P<pii>{_ANY_WORD},[ \t]{_ANY_WORD}|{_ANY_WORD}(?:[ \t]{_ANY_WORD}){{0,2}})"
_RELATIONS = (
    r"(?:wife|husband|partner|son|daughter|mother|mum|father|dad|brother|sister|sibling|carer"
    r"|friend|neighbour|grandson|granddaughter|grandmother|grandfather|aunt|uncle|niece"
    r"|nephew|spouse|fianc[ée]e?|next[ \t]+of[ \t]+kin|NOK)"
)
_MONTHS = (
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
_MONTH_WORD = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"  # noqa: E501
_ORDINAL = r"(?:st|nd|rd|th)?"
_STREET_TYPES = (
    r"(?:Road|Rd|Street|Avenue|Ave|Lane|Close|Drive|Way|Crescent|Place|Court|Gardens|Terrace"
    r"|Grove|Hill|Park|Square|Walk|Rise|View|Row|Mews|Green|Parade|Vale|Croft|Gate|Wharf)"
)

# Recognizers of sde's own: (entity, name, pattern). A group named "pii" marks the part
# replaced; otherwise the whole match is.
_SDE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("PERSON", "titled name", rf"(?<![\w])(?i:{_TITLES})[ \t]+{_NAMES}"),
    (
        "PERSON",
        "relative named after the relation",
        rf"(?<![\w])(?i:{_RELATIONS})(?![\w])[ \t]*[,:(]?[ \t]*(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
    ),
    ("PERSON", "relative named before the relation", rf"{_NAMES}[ \t]*\((?i:{_RELATIONS})\)"),
    (
        "PERSON",
        "salutation or copy line",
        rf"(?<![\w])(?:(?i:dear)[ \t]+|(?i:cc)[ \t]*:[ \t]*)(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
    ),
    (
        "PERSON",
        "patient line",
        rf"(?<![\w])(?i:re|patient|name|pt)[ \t]*:[ \t]*(?:(?i:{_TITLES})[ \t]+)?{_ANY_NAMES}",
    ),
    (
        "PERSON",
        "signature",
        rf"(?i:yours[ \t]+sincerely|yours[ \t]+faithfully|kind[ \t]+regards|best[ \t]+wishes"
        rf"|regards)[,.]?[ \t]*\r?\n[ \t\r\n]*(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
    ),
    (
        "ADDRESS",
        "street address",
        rf"(?<![\w])(?:(?i:flat|apartment|unit)[ \t]+\d+[A-Za-z]?,?[ \t]+)?\d{{1,4}}[A-Za-z]?,?"
        rf"[ \t]+(?:[A-Z][a-z'\u2019]+[ \t]+){{1,3}}{_STREET_TYPES}(?![\w])\.?",
    ),
    (
        "PHONE_NUMBER",
        "UK phone number",
        r"(?<![\w+])(?:\+44[ \t\-.]?(?:\(0\)[ \t\-.]?)?|\(?0)(?:\d\)?[ \t\-.]?){8,9}\d(?![\d])",
    ),
    (
        "IDENTIFIER",
        "hospital number after its label",
        r"(?i:hospital[ \t]+(?:number|no\.?)|hosp[ \t]+no\.?|unit[ \t]+(?:number|no\.?)|MRN"
        r"|case[ \t]+(?:number|no\.?))[ \t]*[:#]?[ \t]*(?P<pii>[A-Za-z0-9][A-Za-z0-9\-/]{3,})",
    ),
    ("IDENTIFIER", "hospital number", r"(?<![\w\-])[A-Z]{1,3}\d{0,2}-\d{5,9}(?![\w\-])"),
    ("IDENTIFIER", "long number", r"(?<![\d])\d{10,}(?![\d])"),
    (
        "DATE_TIME",
        "written date",
        rf"(?<![\w])(?:(?i:\d{{1,2}}{_ORDINAL}[ \t]+(?:of[ \t]+)?{_MONTH_WORD},?[ \t]+\d{{2,4}}"
        rf"|{_MONTH_WORD}[ \t]+\d{{1,2}}{_ORDINAL},?[ \t]+\d{{4}}"
        rf"|{_MONTH_WORD}[ \t]+\d{{4}})"
        rf"|\d{{1,2}}{_ORDINAL}[ \t]+(?:of[ \t]+)?{_MONTH_WORD})(?![\w])",
    ),
    (
        "DATE_TIME",
        "month and year",
        r"(?<![\w/.\-])(?:0?[1-9]|1[0-2])[/\-.](?:19|20)\d\d(?![\w/\-]|\.\d)",
    ),
)


class _SdeRecognizer(EntityRecognizer):
    """A recognizer from a Python ``re`` pattern; the ``pii`` group, if any, is the span."""

    def __init__(self, entity: str, name: str, pattern: str) -> None:
        self._regex = re.compile(pattern)
        self._label = f"sde {name}"
        super().__init__(
            supported_entities=[entity], name=f"sde {name}", supported_language=LANGUAGE
        )

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str], nlp_artifacts: object = None) -> list[Any]:
        entity = self.supported_entities[0]
        out = []
        for match in self._regex.finditer(text):
            start, end = match.span("pii") if "pii" in self._regex.groupindex else match.span()
            if end > start:
                out.append(
                    RecognizerResult(
                        entity,
                        start,
                        end,
                        0.85,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self._label,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return out


class _NhsNumberRecognizer(NhsRecognizer):
    """Presidio's NHS recognizer with sde's validation (also rejects ``0000000000``)."""

    def validate_result(self, pattern_text: str) -> bool:
        return nhs_number.is_valid(pattern_text)


class _EmailRecognizer(EmailRecognizer):
    """Every email-shaped string is an email: no public-suffix check (which would need the
    network, and would let an address at an unlisted domain through)."""

    def validate_result(self, pattern_text: str) -> bool:
        return True


def _date_recognizer() -> Any:
    # Presidio's date patterns without the loose "mm/yy" ones, which read blood pressures
    # and scores (5/10) as dates; "month and year" above replaces "mm/yyyy".
    wanted = [p for p in DateRecognizer.PATTERNS if not p.name.startswith(("mm/yy", "mm/yyyy"))]
    return DateRecognizer(patterns=wanted)


class _NoContext(ContextAwareEnhancer):
    """Scores are not thresholded (every finding counts), so context words, which only
    raise scores, are not needed; Presidio's lemma enhancer deep-copies every result."""

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[Any],
        nlp_artifacts: Any,
        recognizers: list[Any],
        context: list[str] | None = None,
    ) -> list[Any]:
        return raw_results


def build_analyzer() -> Any:
    """An AnalyzerEngine with exactly the recognizers sde wants and no NLP model."""
    recognizers: list[Any] = [
        _NhsNumberRecognizer(),
        _EmailRecognizer(),
        PhoneRecognizer(supported_regions=("GB",)),
        UkPostcodeRecognizer(),
        UkNinoRecognizer(),
        _date_recognizer(),
        *(_SdeRecognizer(entity, name, pattern) for entity, name, pattern in _SDE_PATTERNS),
    ]
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=[LANGUAGE])
    engine = NoOpNlpEngine(models=[{"lang_code": LANGUAGE, "model_name": "no_op"}])
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=engine,
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_NoContext(),
    )
    missing = set(ENTITIES) - set(analyzer.get_supported_entities(LANGUAGE))
    if missing:
        raise RuntimeError(
            f"no recognizer for entities {', '.join(sorted(missing))}; refusing to run"
        )
    return analyzer


# --- known values ------------------------------------------------------------------------
#
# The patient's own identifiers are searched for without compiling a pattern per value
# (that would cost more than the whole analysis, and evict the regex cache Presidio and
# phonenumbers rely on): digits through one static pattern for digit runs, dates through
# static date-shaped patterns parsed and compared, everything else by plain search in a
# case- and space-normalised copy of the text.

_DIGIT_RUN = re.compile(r"[0-9](?:[ \t\-.()]{0,2}[0-9])*")
_MONTH_NUMBER = {name[:3].lower(): number for number, name in enumerate(_MONTHS, start=1)}
_D = r"(?P<d>3[01]|[12][0-9]|0?[1-9])(?:st|nd|rd|th)?"
_M = r"(?P<m>1[0-2]|0?[1-9]|(?i:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?)"
_Y = r"(?P<y>[0-9]{4}|[0-9]{2})"
_DS = r"(?:[ \t]*[/.\-,][ \t]*|[ \t]+(?:(?i:of)[ \t]+)?)"
_DATE_FORMS = tuple(
    re.compile(rf"(?<![0-9A-Za-z]){body}(?![0-9A-Za-z])")
    for body in (
        f"{_D}{_DS}{_M}{_DS}{_Y}",
        f"{_M}{_DS}{_D}{_DS}{_Y}",
        f"{_Y}{_DS}{_M}{_DS}{_D}",
        r"(?P<d>[0-3][0-9])(?P<m>[01][0-9])(?P<y>[0-9]{4})",
        r"(?P<y>[0-9]{4})(?P<m>[01][0-9])(?P<d>[0-3][0-9])",
    )
)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class _Folded:
    """``text`` lower-cased, runs of white space as one space and typographic apostrophes
    as ``'``, with the index of each character in the original."""

    def __init__(self, text: str) -> None:
        chars: list[str] = []
        index: list[int] = []
        in_space = False
        for i, char in enumerate(text):
            if char.isspace():
                if not in_space:
                    chars.append(" ")
                    index.append(i)
                in_space = True
                continue
            in_space = False
            lower = char.lower()
            chars.append("'" if char == "\u2019" else lower if len(lower) == 1 else char)
            index.append(i)
        self.text = "".join(chars)
        self.index = index

    def find_all(self, needle: str) -> Iterable[tuple[int, int]]:
        """Original-text spans of ``needle`` (folded), not inside a longer word."""
        start = self.text.find(needle)
        while start != -1:
            end = start + len(needle)
            before_ok = not _is_word(needle[0]) or start == 0 or not _is_word(self.text[start - 1])
            after_ok = (
                not _is_word(needle[-1]) or end == len(self.text) or not _is_word(self.text[end])
            )
            if before_ok and after_ok:
                yield self.index[start], self.index[end - 1] + 1
            start = self.text.find(needle, start + 1)


def _fold(value: str) -> str:
    """A search value folded as ``_Folded`` folds text."""
    lowered = "".join(
        "'" if c == "\u2019" else low if len(low := c.lower()) == 1 else c for c in value.strip()
    )
    return re.sub(r"\s+", " ", lowered)


def _parse_iso(value: str) -> dt.date | None:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value.strip()):
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


def _date_of(match: re.Match[str]) -> tuple[int, int, int] | None:
    """(day, month, year) of a date-shaped match; the year may be two digits."""
    month_text = match["m"].rstrip(".").lower()
    month = int(month_text) if month_text.isdigit() else _MONTH_NUMBER.get(month_text[:3])
    if month is None:
        return None
    return int(match["d"]), month, int(match["y"])


def _known_findings(text: str, known: Iterable[tuple[Pii, str]]) -> list[Finding]:
    digit_targets: list[tuple[str, str]] = []  # (digits, entity)
    dates: set[dt.date] = set()
    needles: list[tuple[str, str]] = []  # (folded text, entity)
    for kind, raw in known:
        value = raw.strip()
        if not value:
            continue
        entity = _KNOWN_ENTITY[kind]
        nhs = nhs_number.normalise(value) if kind is Pii.NHS_NUMBER else None
        digits = re.sub(r"[^0-9]", "", value)
        if nhs is not None:
            digit_targets.append((nhs, entity))
        elif kind is Pii.PHONE and len(digits) >= 7:
            if value.startswith("+") and digits.startswith("44"):
                digits = "0" + digits[2:]
            digit_targets.append((digits, entity))
            if digits.startswith("0"):
                digit_targets.append(("44" + digits[1:], entity))
                digit_targets.append(("44" + digits, entity))
        elif kind is Pii.DATE and (date := _parse_iso(value)) is not None:
            dates.add(date)
        elif kind is Pii.PERSON:
            needles.extend(
                (_fold(token), entity) for token in re.split(r"[\s\-]+", value) if len(token) >= 2
            )
        elif kind is Pii.ADDRESS:
            needles.append((_fold(value), entity))
            street = re.sub(r"^(?:(?i:flat|apartment|unit)\s+\w+,?\s*)?\d+\w?,?\s+", "", value)
            if street != value and len(street) >= 4:
                needles.append((_fold(street), entity))
        elif kind is Pii.POSTCODE or kind is Pii.IDENTIFIER:
            needles.append((_fold(value), entity))
            compact = "".join(c for c in value if c.isalnum())
            if len(compact) >= 4 and compact != value:
                needles.append((_fold(compact), entity))
        elif len(value) >= 2:
            needles.append((_fold(value), entity))

    found: list[Finding] = []
    if digit_targets:
        for run in _DIGIT_RUN.finditer(text):
            positions = [run.start() + i for i, c in enumerate(run.group()) if c.isdigit()]
            digits = "".join(text[i] for i in positions)
            for target, entity in digit_targets:
                at = digits.find(target)
                while at != -1:
                    first, last = positions[at], positions[at + len(target) - 1]
                    if not (first > 0 and text[first - 1].isdigit()) and not (
                        last + 1 < len(text) and text[last + 1].isdigit()
                    ):
                        found.append(Finding(entity, first, last + 1))
                    at = digits.find(target, at + 1)
    if dates:
        day_month = {(d.day, d.month) for d in dates}
        for form in _DATE_FORMS:
            for match in form.finditer(text):
                parts = _date_of(match)
                if parts is None or (parts[0], parts[1]) not in day_month:
                    continue
                day, month, year = parts
                for date in dates:
                    same_year = year == date.year or (year < 100 and year == date.year % 100)
                    if (date.day, date.month) == (day, month) and same_year:
                        found.append(Finding("DATE_TIME", match.start(), match.end()))
    if needles:
        folded = _Folded(text)
        for needle, entity in needles:
            if needle:
                found.extend(Finding(entity, a, b) for a, b in folded.find_all(needle))
    return found


@dataclass(frozen=True)
class Finding:
    entity: str
    start: int
    end: int


class PresidioDeidentifier:
    """De-identifies free text. Build once and reuse (the engine is the costly part)."""

    def __init__(self) -> None:
        self._analyzer = build_analyzer()
        self._self_test()

    def find(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> list[Finding]:
        """Every identifier found in ``text``, overlapping spans merged."""
        results = self._analyzer.analyze(text=text, language=LANGUAGE, entities=list(ENTITIES))
        spans = [Finding(r.entity_type, r.start, r.end) for r in results]
        spans.extend(_known_findings(text, known))
        spans.extend(_later_mentions(text, spans))
        return _merge(spans)

    def deidentify(self, text: str, known: Iterable[tuple[Pii, str]] = ()) -> str:
        """``text`` with every finding replaced by its typed placeholder."""
        parts: list[str] = []
        cursor = 0
        for finding in self.find(text, known):
            parts.append(text[cursor : finding.start])
            parts.append(PLACEHOLDERS[finding.entity])
            cursor = finding.end
        parts.append(text[cursor:])
        return "".join(parts)

    def _self_test(self) -> None:
        canary = (
            "Re: Alys Canary-Test, DOB 02/01/1970, NHS No 943 476 5919. Tel 0113 496 0000, "
            "alys@example.org, 1 Test Road, LS1 4AP. Seen by Dr Okafor with her son Idris."
        )
        known = [(Pii.PERSON, "Alys"), (Pii.PERSON, "Canary-Test"), (Pii.DATE, "1970-01-02")]
        out = self.deidentify(canary, known)
        for secret in (
            "Alys",
            "Canary",
            "1970",
            "5919",
            "0113",
            "example.org",
            "Test Road",
            "4AP",
            "Okafor",
            "Idris",
        ):
            if secret in out:
                raise RuntimeError("the free-text de-identifier failed its self-test; refusing")


_NAME_TOKEN = re.compile(r"[^\W\d_][^\W\d_'\u2019]*(?:['\u2019][^\W\d_]+)*")
_PARTICLES = frozenset(_PARTICLE.strip("(?:)").split("|"))


def _later_mentions(text: str, spans: Sequence[Finding]) -> list[Finding]:
    """A name introduced once ("Re: KNIGHT, Martin", "Dr Okafor") is removed wherever
    else the text mentions it with a capital ("Martin attended..."), even when the
    patient's own identifiers are not known."""
    tokens = {
        token.group()
        for span in spans
        if span.entity == "PERSON"
        for token in _NAME_TOKEN.finditer(text, span.start, span.end)
        if len(token.group()) >= 3 and token.group().lower() not in _PARTICLES
    }
    if not tokens:
        return []
    folded = _Folded(text)
    found = []
    for token in tokens:
        for start, end in folded.find_all(_fold(token)):
            if text[start].isupper():
                found.append(Finding("PERSON", start, end))
    return found


def _merge(spans: Sequence[Finding]) -> list[Finding]:
    """Merge overlapping findings; the merged span takes the highest-priority entity."""
    merged: list[Finding] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            entity = min(last.entity, span.entity, key=lambda e: _PRIORITY.get(e, len(_PRIORITY)))
            merged[-1] = Finding(entity, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged
