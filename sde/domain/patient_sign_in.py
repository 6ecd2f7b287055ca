"""The rules of a patient's sign-in to their record page (pure: no I/O).

The linked record keeps only the year of birth and the postcode district, too little to
tell a patient from anyone who knows their NHS number. So ingest keeps, beside the linked
record, a *sign-in check*: an HMAC-SHA256, under a key of its own (HKDF label
``sde/v1/patient/sign-in``), of ``pid``, the full date of birth and the full postcode. The
page recomputes it from what the patient types and compares. The check cannot be turned
back into a date of birth or postcode without the master key (a brute force over every
date and postcode needs the key for each guess), and it is never extracted.

Lock-out: failures are counted per patient (a keyed subject of ``pid``, never the number)
and per client address (keyed too). ``max_failures`` within ``window`` locks for
``lock``; a success clears the patient's count. Attempts refused while locked are not
counted, so a lock-out ends when it says it does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from sde.domain.generalise import normalise_postcode
from sde.domain.pseudonyms import hkdf_sha256

SIGN_IN_INFO = b"sde/v1/patient/sign-in"
CLIENT_INFO = b"sde/v1/patient/client"
_SEP = "\x1f"
FAILURE, SUCCESS, LOCKED = "failure", "success", "locked"
SIGN_IN_OUTCOMES = (FAILURE, SUCCESS, LOCKED)
"""How an attempt ended: ``locked`` is one refused while locked (not counted)."""


def sign_in_key(master_key: bytes) -> bytes:
    return hkdf_sha256(master_key, SIGN_IN_INFO)


def birth_date(day: str, month: str, year: str) -> dt.date | None:
    """A date of birth from the three boxes of the form; None if it is not a real date
    (or is in the future, or before 1880)."""
    parts = [p.strip() for p in (day, month, year)]
    if not all(p.isdigit() for p in parts) or len(parts[2]) != 4:
        return None
    try:
        value = dt.date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None
    if value.year < 1880 or value > dt.date.today():
        return None
    return value


def sign_in_check(key: bytes, pid: str, born: dt.date, postcode: str) -> str | None:
    """The sign-in check of ``pid`` with this date of birth and postcode (64 hex), or None
    when the postcode is not a UK postcode. ``key`` is :func:`sign_in_key`'s."""
    code = normalise_postcode(postcode)
    if code is None:
        return None
    message = _SEP.join((pid, born.isoformat(), code)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def client_key(master_key: bytes, address: str) -> str:
    """A client's address as the lock-out stores it: keyed, so no IP address is kept."""
    key = hkdf_sha256(master_key, CLIENT_INFO)
    return "client:" + hmac.new(key, address.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class LockoutRule:
    """``max_failures`` failures within ``window`` lock for ``lock``."""

    max_failures: int
    window: dt.timedelta
    lock: dt.timedelta

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if self.window <= dt.timedelta(0) or self.lock <= dt.timedelta(0):
            raise ValueError("window and lock must be positive")

    @property
    def lookback(self) -> dt.timedelta:
        """How far back failures can still matter."""
        return self.window + self.lock


PATIENT_RULE = LockoutRule(5, dt.timedelta(minutes=15), dt.timedelta(hours=1))
CLIENT_RULE = LockoutRule(20, dt.timedelta(minutes=15), dt.timedelta(hours=1))


def locked_until(
    failures: Sequence[dt.datetime], now: dt.datetime, rule: LockoutRule
) -> dt.datetime | None:
    """When the lock-out these failures cause ends, if it has not ended by ``now``.

    ``failures`` are the failed attempts since the last success (any order). Each run of
    ``max_failures`` failures within ``window`` locks from its last failure for ``lock``.
    """
    times = sorted(failures)
    until: dt.datetime | None = None
    start = 0
    for end, at in enumerate(times):
        while at - times[start] > rule.window:
            start += 1
        if end - start + 1 >= rule.max_failures:
            candidate = at + rule.lock
            if until is None or candidate > until:
                until = candidate
    return until if until is not None and until > now else None
