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


def fixed_width_bytes(values: pa.Array, width: int) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    """The bytes of a string array whose values are all exactly ``width`` bytes, as a
    ``(len, width)`` uint8 matrix (a view of Arrow's buffer, no copy); None if a value
    has another length or is null, or the array is not of type ``string``."""
    import numpy as np
    import pyarrow as pa

    count = len(values)
    if values.null_count or not pa.types.is_string(values.type):
        return None
    offsets = np.frombuffer(
        values.buffers()[1], dtype=np.int32, count=count + 1, offset=values.offset * 4
    )
    start = int(offsets[0])
    if int(offsets[-1]) - start != width * count or not bool(np.all(np.diff(offsets) == width)):
        return None
    if count == 0 or width == 0:
        return np.zeros((count, width), dtype=np.uint8)
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    return data[start : start + width * count].reshape(count, width)


def digit_matrix(values: pa.Array, width: int, what: str) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A string array whose values are all exactly ``width`` ASCII bytes, as a
    ``(len, width)`` int64 matrix of each byte minus ``ord("0")`` (digits become 0-9), read
    from Arrow's buffers without a copy per value. Callers check the shape first; ``what``
    names the values in the error if they did not."""
    import numpy as np

    matrix = fixed_width_bytes(values, width)
    if matrix is None:  # pragma: no cover - guarded by callers
        raise AssertionError(f"{what} must be {width} bytes each")
    return matrix.astype(np.int64) - 48


def _valid_digit_rows(digits: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, Any]:
    """For rows of ten digits (0-9 each, uint8): the Modulus 11 check digit matches, and
    the digits are not all the same (``is_valid_digits``)."""
    import numpy as np

    total = np.zeros(len(digits), dtype=np.int32)
    for position, weight in enumerate(_WEIGHTS):
        total += digits[:, position] * np.int32(weight)
    expected = 11 - total % 11
    expected[expected == 11] = 0  # a check digit of 10 (no valid digit) never matches
    repeated = np.all(digits[:, 1:] == digits[:, :1], axis=1)  # 0000000000, 1111111111, ...
    result: np.ndarray[Any, Any] = (expected == digits[:, 9]) & ~repeated
    return result


def checked_nhs_numbers(values: pa.Array) -> pa.Array:
    """The normalised ten digits where ``is_valid`` holds; null everywhere else."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values, pa.Array) or not (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    ):
        raise TypeError("expected a pyarrow string array")
    if pa.types.is_string(values.type):
        # The usual file: every value ten ASCII digits, which ``normalise`` keeps as they
        # are (nothing to strip or remove), so the kernels of the general case are skipped.
        matrix = fixed_width_bytes(values, 10)
        if matrix is not None:
            digits = matrix - np.uint8(48)
            if bool(np.all(digits < 10)):
                valid = _valid_digit_rows(digits)
                return pc.if_else(pa.array(valid), values, pa.scalar(None, pa.string()))
    digits = normalised_nhs_numbers(values)
    if digits.null_count == len(digits):
        return digits
    candidates = digits.drop_null()
    # Every candidate is exactly ten ASCII digits (guarded by the regex).
    matrix = fixed_width_bytes(candidates, 10)
    assert matrix is not None
    ok = _valid_digit_rows(matrix - np.uint8(48))
    valid = np.zeros(len(digits), dtype=bool)
    valid[np.flatnonzero(digits.is_valid().to_numpy(zero_copy_only=False))] = ok
    return pc.if_else(pa.array(valid, type=pa.bool_()), digits, pa.scalar(None, pa.string()))
