"""How people write identifiers: NHS numbers, dates, phone numbers and postcodes in the
layouts found in real files and letters. Every function takes the random source it uses."""

from __future__ import annotations

import datetime as dt
import random

from sde.services.synth.places import MOBILE, Dialling

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
MONTHS_SHORT = tuple(m[:3] for m in MONTHS)


def ordinal_suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def date_in_text(rng: random.Random, ordinal: int) -> str:
    """A date as people type it in letters: ``12/03/1961``, ``12-Mar-1961``,
    ``12th March 1961``, ``12 March 1961``, ``12 Mar 1961``, ``12.03.1961``."""
    d = dt.date.fromordinal(ordinal)
    style = rng.randrange(6)
    if style == 0:
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if style == 1:
        return f"{d.day:02d}-{MONTHS_SHORT[d.month - 1]}-{d.year}"
    if style == 2:
        return f"{d.day}{ordinal_suffix(d.day)} {MONTHS[d.month - 1]} {d.year}"
    if style == 3:
        return f"{d.day} {MONTHS[d.month - 1]} {d.year}"
    if style == 4:
        return f"{d.day} {MONTHS_SHORT[d.month - 1]} {d.year}"
    return f"{d.day:02d}.{d.month:02d}.{d.year}"


def bad_date(rng: random.Random, iso: str) -> str:
    """An unreadable rendering of an ISO date: wrong layout, impossible day or month, or a
    placeholder. Never valid ISO ``YYYY-MM-DD``."""
    y, m, d = iso[:4], iso[5:7], iso[8:10]
    style = rng.randrange(10)
    if style == 0:
        return f"{d}/{m}/{y}"
    if style == 1:
        return f"{int(d)}-{MONTHS_SHORT[int(m) - 1]}-{y}"
    if style == 2:
        return f"{y}-13-{d}"
    if style == 3:
        return f"{y}-02-30"
    if style == 4:
        return f"31/02/{y}"
    if style == 5:
        return f"{y}-{m}-00"
    if style == 6:
        return f"{d}.{m}.{y}"
    if style == 7:
        return f"{y}/{m}/{d}"
    return ("unknown", "N/K", "00/00/0000", "not recorded")[rng.randrange(4)]


def nhs_in_text(rng: random.Random, digits: str) -> str:
    """``943 476 5919`` (most often), ``9434765919`` or ``943-476-5919``."""
    style = rng.randrange(5)
    if style <= 2:
        return f"{digits[:3]} {digits[3:6]} {digits[6:]}"
    if style == 3:
        return digits
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _grouped(subscriber: str, groups: tuple[int, ...]) -> str:
    parts: list[str] = []
    start = 0
    for size in groups:
        parts.append(subscriber[start : start + size])
        start += size
    return " ".join(parts)


def subscriber_number(rng: random.Random, dialling: Dialling) -> str:
    """The digits after the area code, inside the drama range of ``dialling``."""
    free = dialling.length - len(dialling.prefix)
    return dialling.prefix + f"{rng.randrange(10**free):0{free}d}"


def phone(rng: random.Random, dialling: Dialling, subscriber: str) -> str:
    """A UK number in one of the layouts people use: ``0113 496 0123``, ``(0113) 496 0123``,
    ``01134960123``, ``+44 113 496 0123``, ``+44 (0)113 496 0123``; mobiles
    ``07700 900123``, ``07700900123``, ``+44 7700 900456``, ``+447700900456``,
    ``07700 900 123``."""
    area = dialling.area
    style = rng.randrange(10)
    if dialling is MOBILE:
        if style <= 4:
            return f"{area} {subscriber}"
        if style <= 6:
            return f"{area}{subscriber}"
        if style == 7:
            return f"+44 {area[1:]} {subscriber}"
        if style == 8:
            return f"+44{area[1:]}{subscriber}"
        return f"{area} {subscriber[:3]} {subscriber[3:]}"
    grouped = _grouped(subscriber, dialling.groups)
    if style <= 4:
        return f"{area} {grouped}"
    if style == 5:
        return f"({area}) {grouped}"
    if style == 6:
        return f"{area}{subscriber}"
    if style == 7:
        return f"{area} {subscriber}"
    if style == 8:
        return f"+44 {area[1:]} {grouped}"
    return f"+44 (0){area[1:]} {grouped}"
