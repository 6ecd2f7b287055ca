"""The patient's own identifiers (``Known``), and finding them in text in any layout.

Known values are searched for without compiling a pattern per value: digits through one
static pattern for digit runs, dates through the date pattern (parsed and compared),
everything else by plain search in a case- and space-folded copy of the text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sde.deid import dates
from sde.deid.names import is_common
from sde.deid.spans import KNOWN, Candidate, words
from sde.domain import nhs_number
from sde.errors import InputError


@dataclass(frozen=True)
class Known:
    """The patient's own identifiers from the linked record; every field is optional.

    ``other_*`` hold further values of fields that have one value per record, when the
    record's sources disagree (two dates of birth for one NHS number, say)."""

    names: tuple[str, ...] = ()
    relatives: tuple[str, ...] = ()
    nhs_number: str | None = None
    date_of_birth: str | None = None
    address: str | None = None
    postcode: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    hospital_numbers: tuple[str, ...] = ()
    other_nhs_numbers: tuple[str, ...] = field(default=())
    other_dates_of_birth: tuple[str, ...] = field(default=())
    other_postcodes: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Known:
        """From the JSONL ``known`` object: keys ``names``, ``relatives``, ``nhs_number``,
        ``date_of_birth``, ``address``, ``postcode``, ``phone(s)``, ``email(s)``,
        ``hospital_number(s)``; each a string or a list of strings (or null)."""
        if not isinstance(data, Mapping):
            raise InputError("'known' is not an object")
        values: dict[str, list[str]] = {}
        for key, raw in data.items():
            target = _JSON_KEYS.get(str(key))
            if target is None:
                raise InputError(
                    f"'known' has an unknown key {str(key)[:40]!r}; expected one of "
                    f"{', '.join(sorted(_JSON_KEYS))}"
                )
            values.setdefault(target, []).extend(_strings(raw, str(key)))

        def many(name: str) -> tuple[str, ...]:
            return tuple(values.get(name, ()))

        def first(name: str) -> str | None:
            found = values.get(name, [])
            return found[0] if found else None

        addresses = values.get("address", [])
        return cls(
            names=many("names"),
            relatives=many("relatives"),
            nhs_number=first("nhs_number"),
            date_of_birth=first("date_of_birth"),
            address="\n".join(addresses) if addresses else None,
            postcode=first("postcode"),
            phones=many("phones"),
            emails=many("emails"),
            hospital_numbers=many("hospital_numbers"),
            other_nhs_numbers=many("nhs_number")[1:],
            other_dates_of_birth=many("date_of_birth")[1:],
            other_postcodes=many("postcode")[1:],
        )


_JSON_KEYS = {
    "names": "names",
    "relatives": "relatives",
    "nhs_number": "nhs_number",
    "date_of_birth": "date_of_birth",
    "address": "address",
    "postcode": "postcode",
    "phone": "phones",
    "phones": "phones",
    "email": "emails",
    "emails": "emails",
    "hospital_number": "hospital_numbers",
    "hospital_numbers": "hospital_numbers",
}


def _strings(raw: object, key: str) -> list[str]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if item is None:
            continue
        if not isinstance(item, str):
            raise InputError(f"'known' key {key!r} holds a value that is not a string")
        if item.strip():
            out.append(item.strip())
    return out


# --- name forms --------------------------------------------------------------------------

_TOKEN_SPLIT = re.compile(r"[\s\-\u2010,]+")
_PARTICLES = words("ap da das de del della der di do dos du van von den la le bin ibn al el ter mc")


def name_tokens(name: str) -> list[str]:
    """The words of a name worth searching for on their own (particles dropped)."""
    return [
        t.strip(".'\u2019")
        for t in _TOKEN_SPLIT.split(name)
        if len(t.strip(".'\u2019")) >= 2 and t.strip(".'\u2019").lower() not in _PARTICLES
    ]


def initials(names: Iterable[str]) -> set[str]:
    """Initials of full names (``Amina Okafor`` -> ``AO``), for exact upper-case search."""
    out = set()
    for name in names:
        words = [w for w in _TOKEN_SPLIT.split(name) if w and w.lower() not in _PARTICLES]
        if len(words) >= 2:
            out.add("".join(w[0] for w in words).upper())
    return out


# --- folded search -----------------------------------------------------------------------


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def fold(value: str) -> str:
    """Lower case, one space for any white space, ``'`` for typographic apostrophes."""
    lowered = "".join(
        "'" if c == "\u2019" else low if len(low := c.lower()) == 1 else c for c in value.strip()
    )
    return re.sub(r"\s+", " ", lowered)


_FOLD = str.maketrans({"\u2019": "'", "\t": " ", "\n": " ", "\r": " ", "\f": " ", "\v": " "})


class Folded:
    """``text`` folded as ``fold`` folds, with the index of each character in the original."""

    def __init__(self, text: str) -> None:
        fast = text.lower().translate(_FOLD)
        if len(fast) == len(text) and "  " not in fast:
            self.text = fast  # one character for one: no index needed
            self.index: list[int] | None = None
            return
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

    def find_all(self, needle: str) -> Iterator[tuple[int, int]]:
        """Original-text spans of ``needle`` (folded), not inside a longer word."""
        if not needle:
            return
        start = self.text.find(needle)
        while start != -1:
            end = start + len(needle)
            before_ok = not _is_word(needle[0]) or start == 0 or not _is_word(self.text[start - 1])
            after_ok = (
                not _is_word(needle[-1]) or end == len(self.text) or not _is_word(self.text[end])
            )
            if before_ok and after_ok:
                if self.index is None:
                    yield start, end
                else:
                    yield self.index[start], self.index[end - 1] + 1
            start = self.text.find(needle, start + 1)


# --- the finder --------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"\+?[0-9](?:[ \t\-.()/]{0,3}[0-9])*")
_INITIALS_BEFORE = re.compile(r"(?:(?<![\w])[A-Z]\.?[ \t]?){1,3}\Z")
ANY, CAPITAL = 0, 1


@dataclass(frozen=True)
class KnownFinder:
    """What to search for, built once per ``Known`` (cached)."""

    digits: tuple[tuple[str, str], ...]  # (digits, label)
    dates_of_birth: frozenset[dt.date]
    needles: tuple[tuple[str, str, int], ...]  # (folded value, label, ANY or CAPITAL)
    exact: tuple[tuple[str, str], ...]  # (value, label), case-sensitive (initials)

    def find(self, text: str, folded: Folded | None = None) -> list[Candidate]:
        found: list[Candidate] = []
        if self.digits:
            found.extend(self._digits(text))
        if self.dates_of_birth:
            found.extend(self._dates(text))
        if self.needles or self.exact:
            folded = folded or Folded(text)
            for needle, label, mode in self.needles:
                for start, end in folded.find_all(needle):
                    if mode == CAPITAL and not text[start].isupper():
                        continue
                    if label == "PERSON":
                        before = _INITIALS_BEFORE.search(text, max(0, start - 9), start)
                        if before is not None and before.start() < start:
                            start = before.start()
                    found.append(Candidate(start, end, label, 1.0, KNOWN))
            for value, label in self.exact:
                at = text.find(value)
                while at != -1:
                    end = at + len(value)
                    if (at == 0 or not _is_word(text[at - 1])) and (
                        end == len(text) or not _is_word(text[end])
                    ):
                        found.append(Candidate(at, end, label, 1.0, KNOWN))
                    at = text.find(value, at + 1)
        return found

    def _digits(self, text: str) -> Iterator[Candidate]:
        for run in _DIGIT_RUN.finditer(text):
            group = run.group()
            positions = [run.start() + i for i, c in enumerate(group) if c.isdigit()]
            digits = "".join(text[i] for i in positions)
            for target, label in self.digits:
                at = digits.find(target)
                while at != -1:
                    first, last = positions[at], positions[at + len(target) - 1]
                    if group.startswith("+") and at <= 2 and first == run.start() + 1:
                        first = run.start()
                    yield Candidate(first, last + 1, label, 1.0, KNOWN)
                    at = digits.find(target, at + 1)

    def _dates(self, text: str) -> Iterator[Candidate]:
        for match in dates.DATE.finditer(text):
            parts = dates.parse(match)
            if parts is not None and any(dates.same_date(parts, d) for d in self.dates_of_birth):
                yield Candidate(match.start(), match.end(), "DATE_OF_BIRTH", 1.0, KNOWN)
        compact = {form for d in self.dates_of_birth for form in dates.compact_forms(d)}
        for match in dates.COMPACT.finditer(text):
            if match.group() in compact:
                yield Candidate(match.start(), match.end(), "DATE_OF_BIRTH", 1.0, KNOWN)


@functools.lru_cache(maxsize=4096)
def finder(known: Known) -> KnownFinder:
    """The finder for ``known`` (cached: the same patient's many notes share one)."""
    digits: list[tuple[str, str]] = []
    for value in (known.nhs_number, *known.other_nhs_numbers):
        number = nhs_number.normalise(value) if value else None
        if number is not None:
            digits.append((number, "NHS_NUMBER"))
        elif value and len(re.sub(r"[^0-9]", "", value)) >= 9:
            digits.append((re.sub(r"[^0-9]", "", value), "NHS_NUMBER"))
    for phone in known.phones:
        only = re.sub(r"[^0-9]", "", phone)
        if len(only) < 7:
            continue
        if only.startswith("0044"):
            only = "0" + only[4:]
        elif only.startswith("44") and phone.lstrip().startswith("+"):
            only = "0" + only[2:]
        digits.append((only, "PHONE"))
        if only.startswith("0"):
            digits.append(("44" + only[1:], "PHONE"))  # +44 113 ...
            digits.append(("440" + only[1:], "PHONE"))  # +44 (0)113 ...
    dobs = frozenset(
        d
        for value in (known.date_of_birth, *known.other_dates_of_birth)
        if value and (d := dates.parse_iso(value)) is not None
    )

    needles: list[tuple[str, str, int]] = []
    exact: list[tuple[str, str]] = []
    people = [*known.names, *known.relatives]
    for name in people:
        needles.append((fold(name), "PERSON", ANY))
        for token in name_tokens(name):
            mode = CAPITAL if len(token) <= 3 or is_common(token) else ANY
            needles.append((fold(token), "PERSON", mode))
    # Initials of the patient's full name(s) and of given + family name parts.
    full_names = list(people)
    if len(known.names) >= 2:
        full_names.append(" ".join(known.names))
    exact.extend((i, "PERSON") for i in initials(full_names) if len(i) >= 2)

    if known.address:
        for line in re.split(r"[\n\r]+", known.address):
            if not line.strip():
                continue
            needles.append((fold(line), "ADDRESS", ANY))
            for part in re.split(r"\s*,\s*", line):
                part = part.strip()
                if len(part) < 4 or part.isdigit():
                    continue
                mode = CAPITAL if " " not in part and is_common(part) else ANY
                needles.append((fold(part), "ADDRESS", mode))
                street = re.sub(r"^(?:(?i:flat|apartment|unit)\s+\w+,?\s*)?\d+\w?,?\s+", "", part)
                if street != part and len(street) >= 4:
                    needles.append((fold(street), "ADDRESS", ANY))
    for postcode in (known.postcode, *known.other_postcodes):
        if postcode:
            compact = re.sub(r"[^0-9A-Za-z]", "", postcode)
            needles.append((fold(postcode), "UK_POSTCODE", ANY))
            if len(compact) >= 5:
                needles.append((fold(compact), "UK_POSTCODE", ANY))
                needles.append((fold(f"{compact[:-3]} {compact[-3:]}"), "UK_POSTCODE", ANY))
    for email in known.emails:
        needles.append((fold(email), "EMAIL", ANY))
    for number in known.hospital_numbers:
        needles.append((fold(number), "HOSPITAL_NUMBER", ANY))
        compact = re.sub(r"[^0-9A-Za-z]", "", number)
        if len(compact) >= 5 and compact != number:
            needles.append((fold(compact), "HOSPITAL_NUMBER", ANY))
        only = re.sub(r"[^0-9]", "", number)
        if len(only) >= 6 and only == compact:
            digits.append((only, "HOSPITAL_NUMBER"))
    return KnownFinder(
        digits=tuple(dict.fromkeys(digits)),
        dates_of_birth=dobs,
        needles=tuple(dict.fromkeys(n for n in needles if n[0])),
        exact=tuple(dict.fromkeys(exact)),
    )
