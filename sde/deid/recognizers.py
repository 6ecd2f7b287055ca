"""sde's own Presidio recognizers, one per family of identifiers.

Each is a Presidio ``EntityRecognizer`` (so it can be registered in a
``RecognizerRegistry`` and run by an ``AnalyzerEngine``) whose work is done by ``find``,
which returns plain ``Candidate`` findings with a strength (validated, context, guess).
The ``Deidentifier`` calls ``find`` directly: Presidio's per-call machinery (NLP
artifacts, context enhancement, a ``RecognizerResult`` per finding) cost more than the
recognizers themselves; see docs/deidentification.md for the measurement.

Patterns are compiled once, when the module is imported.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from sde.deid import dates
from sde.deid.names import STRONG, WEAK, Lexicon, is_blocked, zipf
from sde.deid.spans import CONTEXT, GUESS, VALIDATED, Candidate, words
from sde.domain import nhs_number

# Presidio's EmailRecognizer (imported with the package) would fetch the public suffix
# list from the network when first used; sde never uses it, and tells tldextract not to.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import EntityRecognizer, RecognizerResult

LANGUAGE = "en"

# --- building blocks ---------------------------------------------------------------------

_UP = "A-Z\u00c0-\u00d6\u00d8-\u00de\u0100-\u024f"
_LOW = "a-z\u00df-\u00f6\u00f8-\u00ff\u0100-\u024f"
_TITLE_WORDS = (
    r"Dr|Doctor|Mr|Mrs|Ms|Miss|Mx|Prof|Professor|Sister|Nurse|Matron|Rev|Revd|Sir|Dame|Lady"
    r"|Lord|Master"
)
_TITLES = rf"(?:{_TITLE_WORDS})\.?"
_TITLE_SET = frozenset(_TITLE_WORDS.lower().split("|"))
# Capitalised words that follow a title or a label but are not names.
_NOT_NAMES = (
    r"(?!(?:Colleagues?|Sir|Madam|Doctor|Practitioner|Specialist|Consultant|Registrar|Team"
    r"|Manager|Lead|Clinic|Service|Unit|Department|Hospital|Hosp|Tel|Telephone|Mobile"
    r"|Ward[ \t]+(?:Sister|Manager|Clerk|Nurse|Round)"
    r"|Email|Address|NHS|DOB|DoB|MRN|GP|BP|HR|MDT|ECG|MRI|CT|FBC|CRP|OPCS|ICD|In|Charge"
    r"|Associate|Physician|Surgeon|Therapist|Nurse|Sister|Matron|Midwife|Assistant"
    r"|Practice|Educator|Prescriber|Health|Care|Support|On|Call|The|A|An|All|Patient|Re"
    r"|Date|Name|Ref|Copy|Signed|Dictated|Typed|Yours|Kind|Best|Many|Thanks|Regards"
    r"|Sincerely|Faithfully|Community|General|Clinical|Senior|Junior|Staff|Advanced|Specialty"
    r"|Occupational|Physiotherapist|Pharmacist|Psychiatrist|Outpatients?|Inpatients?|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)(?![\w'\u2019]))"
)
_PARTICLE = r"(?:ap|da|das|de|del|della|der|di|do|dos|du|van|von|den|la|le|bin|ibn|al|el|ter)"
_CAPITALISED = rf"[{_UP}][{_LOW}]*(?:[{_UP}][{_LOW}]+)?(?:['\u2019\-][{_UP}]?[{_LOW}]+)*"
_CAPITALS = rf"[{_UP}](?:[{_UP}]|['\u2019\-][{_UP}])+"
_SURNAME = (
    rf"(?:(?:{_PARTICLE}[ \t])?(?:{_CAPITALISED}|{_CAPITALS})"
    r"(?<!['\u2019]s)(?![\w]|['\u2019](?!s\b)))"
)
_WORD = (
    rf"(?:{_NOT_NAMES}(?:[{_UP}]\.(?:[ \t]?[{_UP}]\.)*(?:[ \t]?{_NOT_NAMES}{_SURNAME})?"
    rf"|{_SURNAME}))"
)
_NAMES = rf"(?P<pii>{_NOT_NAMES}{_CAPITALS},[ \t]{_WORD}|{_WORD}(?:[ \t]{_WORD}){{0,2}})"
_ANY_WORD = (
    rf"(?:{_NOT_NAMES}[{_UP}{_LOW}]+(?:['\u2019\-][{_UP}{_LOW}]+)*"
    r"(?<!['\u2019]s)(?![\w]|['\u2019](?!s\b)))"
)
_ANY_NAMES = rf"(?P<pii>{_ANY_WORD},[ \t]{_ANY_WORD}|{_ANY_WORD}(?:[ \t]{_ANY_WORD}){{0,2}})"
_RELATIONS = (
    r"(?:wife|husband|partner|son|daughter|mother|mum|father|dad|brother|sister|sibling|carer"
    r"|friend|neighbour|grandson|granddaughter|grandmother|grandfather|aunt|uncle|niece"
    r"|nephew|spouse|fianc[ée]e?|next[ \t]+of[ \t]+kin|NOK|stepson|stepdaughter|cousin"
    r"|guardian|child|girlfriend|boyfriend)"
)
_STREET_TYPES = (
    r"(?:Road|Rd|Street|St|Avenue|Ave|Lane|Ln|Close|Cl|Drive|Dr|Way|Crescent|Cres|Place|Pl"
    r"|Court|Ct|Gardens|Gdns|Terrace|Terr|Grove|Gr|Hill|Park|Square|Sq|Walk|Rise|View|Row"
    r"|Mews|Green|Parade|Vale|Croft|Gate|Wharf|Meadow|Meadows|Fold|Bank|Brow|Chase|Lea"
    r"|Boulevard|Circus|End|Field|Fields|Wynd|Yard|Broadway|Embankment|Approach|Dale"
    r"|Villas|Market|Quay|Heights|Court)"
)
_HOUSE_TYPES = (
    r"(?:Cottage|Cottages|Farm|Farmhouse|Lodge|Barn|Rectory|Vicarage|Manor|Grange|Bungalow"
    r"|House|Mill|Hall|Croft|Orchard|Court|Mansions|Tower|Heights|Point|Buildings|Apartments"
    r"|Place|Gardens)"
)
_TOWN = (
    rf"[{_UP}][{_LOW}'\u2019]+(?:(?:[ \t\-](?:upon|on|under|le|in|by|the|de|en|super|sub)"
    rf"[ \t\-]|[ \t\-])[{_UP}][{_LOW}'\u2019]+){{0,3}}"
)
_TOWN_TAIL = rf"(?:,[ \t]*(?!{_TITLES}[ \t])(?:{_TOWN}))"


class SdeRecognizer(EntityRecognizer):
    """A Presidio recognizer whose findings come from ``find``."""

    ENTITIES: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__(
            supported_entities=list(self.ENTITIES),
            name=f"sde {type(self).__name__}",
            supported_language=LANGUAGE,
        )

    def load(self) -> None:
        return None

    @abstractmethod
    def find(self, text: str) -> list[Candidate]:
        """Every finding in ``text``."""

    def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
        return [
            RecognizerResult(
                c.label,
                c.start,
                c.end,
                c.score,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: str(self.name),  # type: ignore[has-type]
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for c in self.find(text)
            if c.label in entities
        ]


def _spans(
    regex: re.Pattern[str], text: str, label: str, score: float, strength: int
) -> Iterator[Candidate]:
    group = "pii" in regex.groupindex
    for match in regex.finditer(text):
        start, end = match.span("pii") if group else match.span()
        if end > start:
            yield Candidate(start, end, label, score, strength)


# --- numbers and addresses ---------------------------------------------------------------

_NHS = re.compile(r"(?<![\w+/.])[0-9]{3}([ \t\-.]?)[0-9]{3}\1[0-9]{4}(?![\w/]|[.\-][0-9])")


class SdeNhsNumberRecognizer(SdeRecognizer):
    """Ten digits (``943 476 5919``, ``943-476-5919``, ``9434765919``) passing Modulus 11."""

    ENTITIES = ("NHS_NUMBER",)

    def find(self, text: str) -> list[Candidate]:
        return [
            Candidate(m.start(), m.end(), "NHS_NUMBER", 1.0, VALIDATED)
            for m in _NHS.finditer(text)
            if nhs_number.is_valid(m.group())
        ]


_PHONE = re.compile(
    r"(?<![\w+/.])(?:(?:\+|00)44[ \t\-.]?(?:\(0\)[ \t\-.]?)?\(?|\(?0)"
    r"(?:[0-9]\)?[ \t\-.]?){8,9}[0-9](?![\w/]|[.\-][0-9])"
)


class SdePhoneRecognizer(SdeRecognizer):
    """UK numbers in every common layout: ``0113 496 0321``, ``(0113) 496-0321``,
    ``07700 900123``, ``+44 (0)113 496 0321``, ``+44 7700 900123``, ``0044 …``, dots."""

    ENTITIES = ("PHONE",)

    def find(self, text: str) -> list[Candidate]:
        return list(_spans(_PHONE, text, "PHONE", 0.85, CONTEXT))


_EMAIL = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*"
    r"\.[A-Za-z]{2,}(?![\w@])"
)


class SdeEmailRecognizer(SdeRecognizer):
    ENTITIES = ("EMAIL",)

    def find(self, text: str) -> list[Candidate]:
        return list(_spans(_EMAIL, text, "EMAIL", 1.0, VALIDATED))


_URL = re.compile(
    r"(?<![\w@/.\-])(?:(?:https?://|www\.)[^\s<>\"'\[\]]+"
    r"|(?:[A-Za-z0-9\-]+\.)+(?:nhs\.uk|co\.uk|org\.uk|ac\.uk|gov\.uk|com|org|net|uk|io|info)"
    r"(?:/[^\s<>\"'\[\]]*)?(?![\w@]))"
)


class SdeUrlRecognizer(SdeRecognizer):
    ENTITIES = ("URL",)

    def find(self, text: str) -> list[Candidate]:
        out = []
        for match in _URL.finditer(text):
            end = match.end()
            while end > match.start() and text[end - 1] in ".,;:!?)":
                end -= 1
            out.append(Candidate(match.start(), end, "URL", 0.95, VALIDATED))
        return out


_POSTCODE = re.compile(
    r"(?<![\w])(?:(?:[A-Z]{1,2}[0-9][A-Z0-9]?|GIR)[ \t]?[0-9][ABD-HJLNP-UW-Z]{2}"
    r"|[a-z]{1,2}[0-9][a-z0-9]?[ \t][0-9][abd-hjlnp-uw-z]{2})(?![\w])"
)


class SdePostcodeRecognizer(SdeRecognizer):
    """Full UK postcodes (``LS1 4AP``, ``SW1A1AA``); a district alone (``M1``) is not one."""

    ENTITIES = ("UK_POSTCODE",)

    def find(self, text: str) -> list[Candidate]:
        return list(_spans(_POSTCODE, text, "UK_POSTCODE", 0.95, VALIDATED))


_NINO = re.compile(
    r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"[ \t]?[0-9]{2}[ \t]?[0-9]{2}[ \t]?[0-9]{2}[ \t]?[A-D](?![\w])"
)


class SdeNinoRecognizer(SdeRecognizer):
    ENTITIES = ("UK_NINO",)

    def find(self, text: str) -> list[Candidate]:
        return list(_spans(_NINO, text, "UK_NINO", 0.95, VALIDATED))


_HOSPITAL_LABELLED = re.compile(
    r"(?i:\bMRN|\bhospital[ \t]+(?:number|no\.?|num\.?|id)|\bhosp\.?[ \t]*(?:no\.?|number)"
    r"|\bunit[ \t]+(?:number|no\.?)|\bcase[ \t]+(?:number|no\.?)|\bpatient[ \t]+(?:number|no\.?|id)"
    r"|\blocal[ \t]+(?:number|id)|\bRXR|\bK[ \t]*number|\bPAS[ \t]+(?:number|no\.?|id))"
    r"[ \t]*(?:is[ \t]+)?[:#.\-]?[ \t]*(?P<pii>[A-Za-z0-9][A-Za-z0-9\-/]{4,15})(?![\w\-])"
)
_HOSPITAL_SHAPE = re.compile(
    r"(?<![\w\-/.])(?:[A-Z]{1,3}[0-9]{0,2}-[0-9]{5,9}|[A-Z]{1,3}[0-9]{6,9}[A-Z]?)(?![\w\-/]|\.[0-9])"
)


class SdeHospitalNumberRecognizer(SdeRecognizer):
    """Local hospital numbers: after a label (``MRN 12345678``, ``Hosp No: K1234567``,
    ``hospital number …``) or in a local shape (``RR8-4821937``, ``RTH123456``)."""

    ENTITIES = ("HOSPITAL_NUMBER",)

    def find(self, text: str) -> list[Candidate]:
        out = [
            Candidate(m.start("pii"), m.end("pii"), "HOSPITAL_NUMBER", 0.9, CONTEXT)
            for m in _HOSPITAL_LABELLED.finditer(text)
            if any(c.isdigit() for c in m.group("pii"))
        ]
        out.extend(_spans(_HOSPITAL_SHAPE, text, "HOSPITAL_NUMBER", 0.7, CONTEXT))
        return out


_NOT_CARE = (
    r"(?![ \t]+(?:Hospital|Infirmary|Hospice|Clinic|Surgery|Practice|Medical|Health|Centre"
    r"|Unit|Ward|Trust)(?![\w]))"
)
_STREET = (
    rf"[0-9]{{1,4}}[A-Za-z]?(?:[ \t]?[\-\u2013][ \t]?[0-9]{{1,4}}[A-Za-z]?)?,?[ \t]+"
    rf"(?:[{_UP}][{_LOW}'\u2019]+[ \t]+){{1,3}}{_STREET_TYPES}\.?(?![\w]){_NOT_CARE}"
)
_PLACE = rf"(?:The[ \t]+)?(?:[{_UP}][{_LOW}'\u2019]+[ \t]+){{0,2}}[{_UP}][{_LOW}'\u2019]+"
_STREET_NAME = rf"(?:[{_UP}][{_LOW}'\u2019]+[ \t]+){{1,3}}{_STREET_TYPES}\.?(?![\w]){_NOT_CARE}"
_HOUSE = rf"(?:The[ \t]+)?(?:[{_UP}][{_LOW}'\u2019]+[ \t]+){{1,2}}{_HOUSE_TYPES}(?![\w])"
_FLAT = r"(?:(?i:flat|apartment|apt\.?|unit|room)[ \t]+[0-9]{1,4}[A-Za-z]?)"
_ADDRESS = re.compile(
    rf"(?<![\w])(?:"
    rf"(?:{_FLAT},?[ \t]+(?:{_PLACE},[ \t]+)?|{_HOUSE},?[ \t]+)?{_STREET}{_TOWN_TAIL}{{0,2}}"
    rf"|(?:{_FLAT},?[ \t]+)?{_PLACE},[ \t]+{_STREET_NAME}{_TOWN_TAIL}{{0,2}}"
    rf"|{_FLAT}(?:,?[ \t]+{_HOUSE})?(?:{_TOWN_TAIL}{{1,2}})?"
    rf"|{_HOUSE}{_TOWN_TAIL}{{1,2}}(?=,?[ \t]*(?:[A-Z]{{1,2}}[0-9]|\r?\n|$))"
    rf")"
)
_ADDRESS_CONTEXT = re.compile(
    rf"(?i:lives[ \t]+at|living[ \t]+at|resides[ \t]+at|address(?:[ \t]+is)?[ \t]*:?|moved[ \t]+to"
    rf"|home[ \t]+at)[ \t]+(?P<pii>(?-i:{_HOUSE}|{_TOWN}))"
)


class SdeAddressRecognizer(SdeRecognizer):
    """Street addresses: house number and street (``12 Oak Road``), a flat and block
    (``Flat 3, Kingfisher Court, 12 Oak Road``), a named house (``Rose Cottage``, ``The
    Old Rectory``), with the locality and town after them on the same line."""

    ENTITIES = ("ADDRESS",)

    def find(self, text: str) -> list[Candidate]:
        out = list(_spans(_ADDRESS, text, "ADDRESS", 0.85, CONTEXT))
        out.extend(_spans(_ADDRESS_CONTEXT, text, "ADDRESS", 0.8, CONTEXT))
        return out


class SdeDateRecognizer(SdeRecognizer):
    """Dates in clinical layouts (``sde.deid.dates``); a date that the words before it
    introduce as a date of birth (``DOB``, ``born``…) is ``DATE_OF_BIRTH``."""

    ENTITIES = ("DATE", "DATE_OF_BIRTH")

    def find(self, text: str) -> list[Candidate]:
        out = []
        for match in dates.DATE.finditer(text):
            parts = dates.parse(match)
            if parts is None:
                continue
            start = match.start()
            if dates.is_dob_context(text, start):
                out.append(Candidate(start, match.end(), "DATE_OF_BIRTH", 0.95, CONTEXT))
            else:
                out.append(Candidate(start, match.end(), "DATE", 0.9, CONTEXT))
        return out


# --- person names ------------------------------------------------------------------------

_CONTEXT_RULES = tuple(
    re.compile(p)
    for p in (
        # Dr Okafor, Mrs J. Patel, Sister Jones
        rf"(?<![\w])(?i:{_TITLES})[ \t]+{_NAMES}",
        # her daughter Amina, his wife, Mary; son: Idris
        rf"(?<![\w])(?i:{_RELATIONS})(?![\w])(?:[ \t]*,)?[ \t]*[:(]?[ \t]*(?:(?i:{_TITLES})[ \t]+)?"
        rf"(?:\((?:[^)\n]{{0,20}})\)[ \t]+)?{_NAMES}",
        # Dear Anne; cc: Dr X; c.c. X; copy to X
        rf"(?<![\w])(?:(?i:dear)[ \t]+|(?i:cc|c\.c\.|copy[ \t]+to)[ \t]*:?[ \t]*)"
        rf"(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
        # seen by X, reviewed by X, discussed with X
        rf"(?<![\w])(?i:seen|reviewed|examined|referred|assessed|discussed|spoke|spoken|telephoned"
        rf"|accompanied|attended|dictated|signed|written|verified|authorised|phoned|called)"
        rf"[ \t]+(?i:by|with|to)[ \t]+(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
        # CNS Rubel, Named midwife Millie Ashworth, Crew: Abimbola Okeke, Physio (X)
        rf"(?<![\w])(?:(?:CNS|RN|RGN|HCA|MW|SN|OT|PT|SLT|ANP|ACP|HV|DN|SW)[ \t]+"
        rf"|(?i:named[ \t]+(?:midwife|nurse|worker)|social[ \t]+worker|care[ \t]+coordinator"
        rf"|health[ \t]+visitor|key[ \t]+worker|crew|reported|present|prescriber|completed[ \t]+by"
        rf"|given[ \t]+by|raised[ \t]+by|physio|author|clinician|reviewer|requested[ \t]+by"
        rf"|dictated[ \t]+by|signed[ \t]+by|rang|called|thanks|by)[ \t]*[:(,]?[ \t]*)"
        rf"(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
        # KNIGHT, Martin
        rf"(?<![\w])(?P<pii>(?!(?:NHS|DOB|MRN|GP|BP|COPD|CKD|ECG|MRI|CT|XR|ICD|BNF|OPCS|SNOMED|NEWS|GCS"
        rf"|AMU|ED|A&E|ITU|ICU|HDU|MDT|IBD|TIA|CVA|MI|AF|UTI|DM)\b)[{_UP}]{{3,}}(?:['\u2019\-][{_UP}]+)*"
        rf",[ \t]{_NOT_NAMES}{_CAPITALISED}(?![\w]))",
        # Re: KNIGHT, Martin; Patient: david higginbottom; Name: ...
        rf"(?<![\w])(?i:re|patient|patient[ \t]+name|name|pt|client|NOK|next[ \t]+of[ \t]+kin"
        rf"|surname|forenames?|first[ \t]+names?|given[ \t]+names?|family[ \t]+name|full[ \t]+name"
        rf"|GP|consultant|clinician|author|from|to)[ \t]*:[ \t]*(?:(?i:{_TITLES})[ \t]+)?"
        rf"{_ANY_NAMES}",
        # a signature after the closing
        rf"(?i:yours[ \t]+sincerely|yours[ \t]+faithfully|kind[ \t]+regards|best[ \t]+wishes"
        rf"|many[ \t]+thanks|with[ \t]+thanks|regards|signed)[,.]?[ \t]*\r?\n[ \t\r\n]*"
        rf"(?:(?i:{_TITLES})[ \t]+)?{_NAMES}",
    )
)
# A.Green, C.Cook: an initial glued to a capitalised word.
_GLUED_INITIAL = re.compile(
    rf"(?<![\w.])(?P<pii>[{_UP}]\.(?:[{_UP}]\.)?{_NOT_NAMES}[{_UP}][{_LOW}]+(?:['\u2019\-][{_UP}]?[{_LOW}]+)*)"
    r"(?![\w]|\.[\w])"
)
# A name before a role: "Zahid Rehman\nConsultant Physician", "A. Young, Ward Sister",
# "Morag Urquhart (General Practitioner)".
_ROLE_AFTER = re.compile(
    r"[ \t]*(?:,|\(|\r?\n)[ \t]*(?:(?i:senior|junior|specialty|staff|advanced|clinical|community"
    r"|consultant|ward|general|lead|principal|trainee|student|charge|district|practice|specialist"
    r"|occupational|psychiatric|mental[ \t]+health|diabetes|respiratory|heart[ \t]+failure)[ \t]+)*"
    r"(?i:consultant|registrar|physician|surgeon|nurse|sister|practitioner|therapist"
    r"|physiotherapist|pharmacist|midwife|psychiatrist|psychologist|radiographer|dietitian"
    r"|paramedic|GP|FY[12]|SHO|doctor|matron|health[ \t]+visitor|social[ \t]+worker"
    r"|care[ \t]+coordinator|cardiologist|gastroenterologist|neurologist|nephrologist"
    r"|rheumatologist|geriatrician|paediatrician|oncologist|haematologist|dermatologist"
    r"|anaesthetist|radiologist|ophthalmologist|diabetologist|endocrinologist)\b(?![ \t]*:)"
)
_ANY_NAMES_BEFORE = re.compile(rf"(?<![\w]){_ANY_NAMES}\Z")
# A sign-off at the very end of a note: ". GA", "- PRUGREISH VRODOVRAS", ". bo chan".
_SIGN_OFF = re.compile(
    r"(?:[.!?;\-\u2013][ \t]+|\n[ \t]*)"
    r"(?P<pii>[^\W\d_][^\W\d_'\u2019\-]*(?:[ \t][^\W\d_][^\W\d_'\u2019\-]*){0,2})[ \t]*\s*\Z"
)

# Jane Smith (daughter): the relation is found first, the name looked for just before it.
_RELATION_AFTER = re.compile(
    rf"[ \t]*[,(][ \t]*(?:(?i:her|his|their|the[ \t]+patient's)[ \t]+)?(?i:{_RELATIONS})\b"
)
_NAMES_BEFORE = re.compile(rf"(?<![\w]){_NAMES}\Z")
_PATIENT_LINE = next(r for r in _CONTEXT_RULES if "surname" in r.pattern)
_LOWER_TITLED = re.compile(
    r"(?<![\w])(?:dr|mr|mrs|ms|miss|prof)\.?[ \t]+(?P<pii>[a-z][a-z'\-]{2,})"
)
_TOKEN = re.compile(
    rf"(?<![\w'\u2019\-&/])(?:[{_UP}]\.|[{_UP}][{_LOW}]+(?:[{_UP}][{_LOW}]+)?(?:['\u2019\-][{_UP}]?[{_LOW}]+)*"
    rf"|[{_UP}]{{2,}}(?:['\u2019\-][{_UP}]+)*)(?![\w])"
)
_ABBREVIATIONS = words(
    "GP BP HR RR CT MRI ECG OD BD TDS QDS PRN TTO TCI MDT ED AE ICU ITU HDU AMU OPD ENT"
    " COPD CKD IBD TIA CVA DNR DNACPR NHS DOB MRN PHQ GAD EDD LMP FBC CRP LFT UE INR OT PT"
    " SLT DN HV CNS RN HCA SW ACP ANP NOK ASAP NAD SOB"
)
_LOWER_WORD = re.compile(r"(?<![\w'\u2019\-])[a-z][a-z\u00df-\u00ff]+(?:-[a-z]+)?(?![\w\-])")


def _lower_pair(tier: Callable[[str], int], first: str, second: str) -> bool:
    a, b = tier(first), tier(second)
    if not a or not b or STRONG not in (a, b) or len(first) < 3 or len(second) < 3:
        return False
    return (
        zipf(first) < 4.0
        and zipf(second) < 4.0
        and not (first in _LOWER_STOP or second in _LOWER_STOP)
    )


_POSSESSIVE = re.compile(r"['\u2019]s$")


class SdePersonRecognizer(SdeRecognizer):
    """Names without a language model: context rules (titles, relations, salutations,
    patient lines, signatures, ``seen by``), then runs of capitalised words in the name
    lexicon (``sde.deid.names``)."""

    ENTITIES = ("PERSON",)

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        super().__init__()

    def find(self, text: str) -> list[Candidate]:
        out: list[Candidate] = []
        for rule in _CONTEXT_RULES:
            any_case = rule is _PATIENT_LINE
            for match in rule.finditer(text):
                start, end = match.span("pii")
                if any_case:
                    start, end = self._trim_lower(text, start, end)
                word = text[start:end]
                if end > start and not (" " not in word and word.lower() in _LOWER_STOP):
                    out.append(Candidate(start, end, "PERSON", 0.85, CONTEXT))
        for match in _RELATION_AFTER.finditer(text):
            at = match.start()
            before = _NAMES_BEFORE.search(text, max(0, at - 60), at)
            if before is not None:
                out.append(Candidate(*before.span("pii"), "PERSON", 0.85, CONTEXT))
        out.extend(_spans(_GLUED_INITIAL, text, "PERSON", 0.8, CONTEXT))
        for match in _ROLE_AFTER.finditer(text):
            at = match.start()
            before = _ANY_NAMES_BEFORE.search(text, max(0, at - 60), at)
            if before is not None:
                start, end = self._trim_lower(text, *before.span("pii"))
                if end > start:
                    out.append(Candidate(start, end, "PERSON", 0.8, CONTEXT))
        sign_off = _SIGN_OFF.search(text, max(0, len(text) - 60))
        if sign_off is not None and self._signs(sign_off.group("pii")):
            out.append(Candidate(*sign_off.span("pii"), "PERSON", 0.7, CONTEXT))
        for match in _LOWER_TITLED.finditer(text):
            word = match.group("pii")
            if self.lexicon.tier(word) or (zipf(word) < 3.0 and not is_blocked(word)):
                out.append(Candidate(match.start("pii"), match.end("pii"), "PERSON", 0.7, CONTEXT))
        out.extend(self._lexicon_runs(text))
        out.extend(self._lower_case_pairs(text))
        return out

    def _trim_lower(self, text: str, start: int, end: int) -> tuple[int, int]:
        """Drop leading words that are not names (``by``, ``with``, ``seen``...) from a
        span found by case-blind rules; nothing is left if an everyday word remains."""
        words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
        while words:
            word = text[start + words[0][0] : start + words[0][1]]
            if (
                word.lower() in _LOWER_STOP
                or word.rstrip(".").lower() in _TITLE_SET
                or (is_blocked(word) and not self.lexicon.tier(word))
            ):
                words.pop(0)
            else:
                break
        if not words:
            return start, start
        for a, b in words:
            word = text[start + a : start + b].strip(",.")
            if word.islower() and (
                is_blocked(word) or (zipf(word) >= 4.0 and not self.lexicon.tier(word))
            ):
                return start, start
            if word.isupper() and (len(word) <= 3 or word in _ABBREVIATIONS):
                return start, start
            if is_blocked(word) and not self.lexicon.tier(word):
                return start, start
        return start + words[0][0], start + words[-1][1]

    def _signs(self, words: str) -> bool:
        """Whether the last words of a note are a sign-off: initials or name-like words."""
        parts = words.split()
        if len(parts) == 1 and parts[0].isupper() and 2 <= len(parts[0]) <= 3:
            return parts[0] not in _ABBREVIATIONS
        return all(
            p.lower() not in _LOWER_STOP
            and not is_blocked(p)
            and (self.lexicon.tier(p) or zipf(p) < 3.0)
            for p in parts
        )

    def _lower_case_pairs(self, text: str) -> Iterator[Candidate]:
        """``sandra clarke``: two lower-case words in a row that are both name words
        (one of them rare as an English word) and neither an everyday word."""
        tier = self.lexicon.tier
        previous: re.Match[str] | None = None
        for match in _LOWER_WORD.finditer(text):
            if (
                previous is not None
                and text[previous.end() : match.start()] == " "
                and _lower_pair(tier, previous.group(), match.group())
            ):
                yield Candidate(previous.start(), match.end(), "PERSON", 0.6, GUESS)
            previous = match

    def _lexicon_runs(self, text: str) -> Iterator[Candidate]:
        tier = self.lexicon.tier
        run: list[tuple[int, int, int, bool]] = []  # (start, end, tier, upper-case word)
        last_end = -10

        def flush() -> Iterator[Candidate]:
            # A run is a name if it has a strong name word, or two or more name words
            # (a weak one among them); initials and rare words join a name.
            tiers = [t for _, _, t, _ in run]
            strong = [
                r
                for r in run
                if r[2] == STRONG
                and (len(run) > 1 or (r[1] - r[0] >= 3 and not r[3]) or r[1] - r[0] >= 4)
            ]
            named = sum(1 for t in tiers if t in (STRONG, WEAK))
            if strong or (named >= 1 and len(run) >= 2 and WEAK in tiers):
                lo, hi = 0, len(run) - 1
                yield Candidate(run[lo][0], run[hi][1], "PERSON", 0.7, GUESS)

        for match in _TOKEN.finditer(text):
            word = match.group()
            start, end = match.span()
            if word.endswith("."):  # an initial
                kind = -1
            elif len(word) <= 2 and word.isupper():  # NI, GP, OD: abbreviations
                kind = 0
            else:
                base = _POSSESSIVE.sub("", word)
                end = start + len(base)
                kind = tier(base)
                if not kind:
                    kind = -2 if len(base) >= 3 and zipf(base) < 2.5 and not is_blocked(base) else 0
            gap = text[last_end:start] if run else ""
            joined = run and (
                gap in (" ", "-")
                or (gap == ", " and run[-1][3] and not word.isupper())
                or (gap == "" and run[-1][2] == -1)
            )
            if not joined and run:
                yield from flush()
                run = []
            if kind == 0:
                if run:
                    yield from flush()
                run = []
                last_end = end
                continue
            run.append((start, end, kind, word.isupper() and len(word) > 1))
            last_end = end if not word.endswith(("'s", "\u2019s")) else end + 99
        if run:
            yield from flush()


_LOWER_STOP = words(
    "the a an and or of to in on at by with for from he she they his her their him them it"
    " is was be been has have had this that who which today colleague"
)

# --- places that look like names but are not ---------------------------------------------

_PROTECTED = re.compile(
    rf"(?:(?<![\w])(?:St\.?|Saint)[ \t]+)?(?:(?<![\w])[{_UP}][\w'\u2019.\-]*[ \t]+){{1,4}}"
    r"(?:Hospital|Infirmary|Hospice|Medical[ \t]+Centre|Health[ \t]+Centre|Surgery|Practice"
    r"|Ward|Unit|Centre|Clinic|Trust|Hospitals|General|Memorial|Healthcare|Sanatorium)(?![\w])"
    r"|(?<![\w])(?:Ward|Bay|Unit|Theatre)[ \t]+[0-9]{1,3}[A-Z]?(?![\w])"
    rf"|(?<![\w])[{_UP}][\w\-]*(?:['\u2019]s?)?[ \t]+(?:disease|syndrome|palsy|phenomenon"
    r"|contracture|oesophagus|sign|test|fracture|ulcer|lymphoma|chorea|ataxia|dystrophy"
    r"|tumou?r|sarcoma|reflex|manoeuvre|score|scale|criteria|classification|procedure"
    r"|operation|cyst|node|arthritis|encephalopathy|thyroiditis|neuralgia|catheter|splint"
    r"|pouch|diverticulum|hernia|anomaly|triad|varices|dementia|disorder|bandage|line)(?![\w])"
)
_TITLE_START = re.compile(rf"(?i:{_TITLES}|{_RELATIONS})[ \t]", re.ASCII)


def protected_regions(text: str) -> list[tuple[int, int]]:
    """Hospital, ward and practice names and eponymous conditions (``St James's
    University Hospital``, ``Ward 7``, ``Parkinson's disease``): names here are not people."""
    out = []
    for match in _PROTECTED.finditer(text):
        start, end = match.span()
        # "Sister Ward", "Dr Patel's clinic" are people: leave the titled word out.
        title = _TITLE_START.match(text, start)
        if title is not None:
            start = title.end()
            nxt = text.find(" ", start)
            if nxt == -1 or nxt >= end:
                continue
            start = nxt + 1
        out.append((start, end))
    return out
