"""NHS numbers: normalisation and Modulus 11 validation.

An NHS number is ten digits; the tenth is a check digit computed from the first nine with
weights 10..2 (Modulus 11). A remainder giving check digit 10 means the number is invalid.
Numbers of one repeated digit (``0000000000``, ``1111111111``...) pass the arithmetic but
are never issued, so they are rejected as junk.
"""

from __future__ import annotations

import operator

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = str.maketrans("", "", " -\t")


def normalise(raw: str) -> str | None:
    """Return the ten digits of ``raw`` with spaces and dashes removed, or None if it is
    not ten digits once separators are removed. Does not check the check digit."""
    digits = raw.strip().translate(_SEPARATORS)
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    return digits


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None if no valid digit exists."""
    codes = first_nine.encode("ascii")
    if len(codes) != 9:
        raise ValueError("a check digit needs exactly nine digits")
    # ASCII digit codes are 48 + d: subtract 48 * sum(weights) = 48 * 54 once.
    total: int = sum(map(operator.mul, codes, _WEIGHTS)) - 2592
    digit = 11 - (total % 11)
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def is_valid(raw: str) -> bool:
    """True if ``raw`` is a valid, plausible NHS number (any common separators allowed)."""
    digits = normalise(raw)
    return digits is not None and is_valid_digits(digits)


def is_valid_digits(digits: str) -> bool:
    """``is_valid`` for a value already normalised to ten ASCII digits."""
    if digits == digits[0] * 10:
        return False
    expected = check_digit(digits[:9])
    return expected is not None and expected == ord(digits[9]) - 48


def complete(first_nine: str) -> str | None:
    """Append the check digit to nine digits; None if those nine have no valid check digit."""
    digit = check_digit(first_nine)
    return None if digit is None else f"{first_nine}{digit}"
