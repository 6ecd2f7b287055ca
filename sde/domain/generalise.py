"""Generalisations of quasi-identifiers. Each returns None for a value it cannot read,
and never echoes the value back in an error."""

from __future__ import annotations

import datetime as dt
import re

_POSTCODE = re.compile(r"^\s*([A-Z]{1,2}[0-9][A-Z0-9]?)\s*([0-9][A-Z]{2})\s*$", re.IGNORECASE)


def parse_date(value: str) -> dt.date | None:
    """ISO ``YYYY-MM-DD`` only: providers are asked for it, anything else is bad input."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        return None


def year(value: dt.date) -> int:
    return value.year


def month(value: dt.date) -> str:
    """``YYYY-MM``."""
    return f"{value.year:04d}-{value.month:02d}"


def postcode_district(value: str) -> str | None:
    """The outward code (district) of a UK postcode: ``LS1 4AP`` -> ``LS1``."""
    match = _POSTCODE.match(value)
    return match.group(1).upper() if match else None


def normalise_postcode(value: str) -> str | None:
    """A UK postcode as ``OUTWARD INWARD`` in capitals (``ls14ap`` -> ``LS1 4AP``); None if
    it is not shaped like one."""
    match = _POSTCODE.match(value)
    return f"{match.group(1)} {match.group(2)}".upper() if match else None


GENERALISATIONS = ("year", "month", "postcode_district")
