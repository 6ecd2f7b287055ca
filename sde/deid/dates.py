"""Dates in clinical free text: one pattern for the common layouts, their parsing, and the
context that makes a date a date of birth (pure).

Found: ``12/03/1961``, ``12.3.61``, ``12-03-1961``, ``1961-03-12``, ``12-Mar-1961``,
``12th March 1961``, ``12 Mar 61``, ``7th of March 1961``, ``March 12, 1961``, ``12th
March``, ``Mar 1961``, ``March-1961``, ``03/1961``. Not dates: clinical shorthand with two
parts (``2/7``, ``6/12``, ``3/52``), blood pressures (``132/84``), scores (``18/48``),
dose ratios (``25/100``): a numeric date needs three parts, or a four-digit year.
"""

from __future__ import annotations

import datetime as dt
import re

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
_MONTH_NUMBER = {name[:3]: number for number, name in enumerate(MONTHS, start=1)}
_MONTH_NUMBER["sept"] = 9

_MONTH = (
    r"(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_ORD = r"(?:st|nd|rd|th)?"
_DAY = r"(?:3[01]|[12][0-9]|0?[1-9])"
_NUM_MONTH = r"(?:1[0-2]|0?[1-9])"
_YEAR4 = r"(?:1[89]|20)[0-9]{2}"

_BODIES = (
    # 12/03/1961, 12.3.61, 12-03-1961 (the same separator twice)
    rf"(?P<d1>{_DAY})(?P<s1>[/.\-])(?P<m1>{_NUM_MONTH})(?P=s1)(?P<y1>{_YEAR4}|[0-9]{{2}})",
    # 1961-03-12, 1961/03/12
    rf"(?P<y2>{_YEAR4})(?P<s2>[/.\-])(?P<m2>{_NUM_MONTH})(?P=s2)(?P<d2>{_DAY})",
    # 12th March 1961, 12-Mar-1961, 7th of March 1961, 12 Mar 61
    rf"(?P<d3>{_DAY}){_ORD}(?:[ \t]+of)?[ \t\-]+(?P<m3>{_MONTH}),?[ \t\-]+"
    rf"(?P<y3>{_YEAR4}|[0-9]{{2}})",
    # March 12, 1961; Mar 12th 1961
    rf"(?P<m4>{_MONTH})[ \t]+(?P<d4>{_DAY}){_ORD},?[ \t]+(?P<y4>{_YEAR4})",
    # Mar 1961, March-1961
    rf"(?P<m5>{_MONTH})[ \t\-]+(?P<y5>{_YEAR4})",
    # 03/1961
    rf"(?P<m6>{_NUM_MONTH})/(?P<y6>{_YEAR4})",
    # 12th March, 5 May (no year)
    rf"(?P<d7>{_DAY}){_ORD}(?:[ \t]+of)?[ \t]+(?P<m7>{_MONTH})",
)
DATE = re.compile(
    r"(?<![\w/.\-])(?:" + "|".join(_BODIES) + r")(?![\w/]|[.\-][0-9])",
)
# Eight digits, for the patient's own date of birth only (otherwise they are codes).
COMPACT = re.compile(r"(?<![0-9])[0-9]{8}(?![0-9])")

_DOB_CONTEXT = re.compile(
    r"(?i:\b(?:d\.?\s?o\.?\s?b\.?|date[ \t]+of[ \t]+birth|birth[ \t]*date|born(?:[ \t]+on)?)"
    r"[ \t]*[:\-\u2013=]?[ \t]*(?:on[ \t]+)?\(?[ \t]*)\Z"
)


def parse(match: re.Match[str]) -> tuple[int | None, int, int | None] | None:
    """(day, month, year) of a ``DATE`` match, None where the layout has no such part;
    None if the parts are not a possible date (31/02 is possible: the year may be absent)."""
    for i in range(1, 8):
        month_text = match.group(f"m{i}")
        if month_text is None:
            continue
        day_text = match.groupdict().get(f"d{i}")
        year_text = match.groupdict().get(f"y{i}")
        month = _month(month_text)
        if month is None:
            return None
        day = int(day_text) if day_text else None
        year = int(year_text) if year_text else None
        return day, month, year
    return None


def _month(text: str) -> int | None:
    text = text.rstrip(".").lower()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 12 else None
    return _MONTH_NUMBER.get(text[:4] if text.startswith("sept") else text[:3])


def is_dob_context(text: str, start: int) -> bool:
    """Whether the words just before ``start`` introduce a date of birth (``DOB:``,
    ``date of birth``, ``born on``, ``d.o.b.``)."""
    return _DOB_CONTEXT.search(text, max(0, start - 24), start) is not None


def parse_iso(value: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date, None if ``value`` is not one."""
    value = value.strip()
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def same_date(parts: tuple[int | None, int, int | None], date: dt.date) -> bool:
    """Whether parsed ``parts`` name ``date`` (a two-digit year matches its century's)."""
    day, month, year = parts
    if day is None or year is None or (day, month) != (date.day, date.month):
        return False
    return year == date.year or (year < 100 and year == date.year % 100)


def compact_forms(date: dt.date) -> tuple[str, str]:
    """The eight-digit layouts of ``date``: DDMMYYYY and YYYYMMDD."""
    return (
        f"{date.day:02d}{date.month:02d}{date.year}",
        f"{date.year}{date.month:02d}{date.day:02d}",
    )
