"""NHS numbers: normalisation and Modulus 11 validation.

An NHS number is ten digits; the tenth is a check digit computed from the first nine with
weights 10..2 (Modulus 11). A remainder giving check digit 10 means the number is invalid.
Numbers of one repeated digit (``0000000000``, ``1111111111``...) pass the arithmetic but
are never issued, so they are rejected as junk.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: the per-value functions need no pyarrow
    import numpy as np
    import pyarrow as pa

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_SEPARATORS = str.maketrans("", "", " -\t")
# Every character ``str.strip()`` removes (``str.isspace()``), for the vectorised form.
# tests/unit/test_nhs_number_arrow.py checks it against all of Unicode.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


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


# Vectorised forms over Arrow arrays (memory only; no I/O). Each agrees with its per-value
# counterpart on every input: ``normalised_nhs_numbers`` with ``normalise``,
# ``valid_nhs_numbers`` with ``is_valid``, ``checked_nhs_numbers`` with both.


def normalised_nhs_numbers(values: pa.Array) -> pa.Array:
    """``normalise`` over a string array: the ten digits, or null where ``normalise``
    gives None (and where the value is null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values, pa.Array) or not (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    ):
        raise TypeError("expected a pyarrow string array")
    if pa.types.is_large_string(values.type):
        values = values.cast(pa.string())
    stripped = pc.utf8_trim(values, characters=WHITESPACE)
    digits = pc.replace_substring_regex(stripped, pattern="[ \t-]", replacement="")
    ten = pc.match_substring_regex(digits, pattern="^[0-9]{10}$")
    return pc.if_else(ten, digits, pa.scalar(None, pa.string()))


def valid_nhs_numbers(values: pa.Array) -> pa.Array:
    """``is_valid`` over a string array: a BooleanArray, False for nulls (never null)."""
    return checked_nhs_numbers(values).is_valid()


def digit_matrix(values: pa.Array, width: int, what: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A string array whose values are all exactly ``width`` ASCII bytes, as a
    ``(len, width)`` int64 matrix of each byte minus ``ord("0")`` (digits become 0-9), read
    from Arrow's buffers without a copy per value. Callers check the shape first; ``what``
    names the values in the error if they did not."""
    import numpy as np

    count = len(values)
    offsets = np.frombuffer(
        values.buffers()[1], dtype=np.int32, count=count + 1, offset=values.offset * 4
    )
    if not bool(np.all(np.diff(offsets) == width)):  # pragma: no cover - guarded by callers
        raise AssertionError(f"{what} must be {width} bytes each")
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start : start + width * count].reshape(count, width).astype(np.int64) - 48


def checked_nhs_numbers(values: pa.Array) -> pa.Array:
    """The normalised ten digits where ``is_valid`` holds; null everywhere else."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = normalised_nhs_numbers(values)
    if digits.null_count == len(digits):
        return digits
    candidates = digits.drop_null()
    # Every candidate is exactly ten ASCII digits (guarded by the regex).
    matrix = digit_matrix(candidates, 10, "normalised NHS numbers")
    total = matrix[:, :9] @ np.array(_WEIGHTS, dtype=np.int64)
    expected = 11 - total % 11
    expected[expected == 11] = 0  # a check digit of 10 (no valid digit) never matches
    repeated = np.all(matrix == matrix[:, :1], axis=1)  # 0000000000, 1111111111, ...
    ok = (expected == matrix[:, 9]) & ~repeated
    valid = np.zeros(len(digits), dtype=bool)
    valid[np.flatnonzero(digits.is_valid().to_numpy(zero_copy_only=False))] = ok
    return pc.if_else(pa.array(valid, type=pa.bool_()), digits, pa.scalar(None, pa.string()))
