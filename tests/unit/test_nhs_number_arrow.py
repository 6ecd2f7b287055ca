"""The vectorised NHS number checks agree with the per-value ones on every input."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from sde.domain import nhs_number
from sde.domain.nhs_number import (
    WHITESPACE,
    checked_nhs_numbers,
    normalised_nhs_numbers,
    valid_nhs_numbers,
)

# Characters that matter to normalisation and the check: ASCII digits, digits of other
# scripts (which str.isdigit() accepts but are not ASCII), separators, every whitespace.
_ALPHABET = (
    "0123456789" * 6 + " -\t\n" + "\u0661\u0662\uff15\U0001d7d7\u00b2" + "aZ+.,/" + WHITESPACE
)
_FULLWIDTH = "".join(chr(0xFF10 + int(d)) for d in "9434765919")
_ARABIC_INDIC = "".join(chr(0x0660 + int(d)) for d in "9434765919")


def test_whitespace_is_exactly_what_str_strip_removes() -> None:
    every = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert every == WHITESPACE


def junk(count: int, seed: int) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.03:
            out.append(None)
        elif kind < 0.5:
            made = nhs_number.complete(f"{rng.randrange(10**9):09d}") or "1234567890"
            if rng.random() < 0.5:  # perturb one character
                spot = rng.randrange(len(made))
                made = made[:spot] + rng.choice(_ALPHABET) + made[spot + 1 :]
            pad = "".join(rng.choice(WHITESPACE + "-") for _ in range(rng.randrange(3)))
            out.append(pad + made + pad[::-1])
        elif kind < 0.55:
            out.append(rng.choice("0123456789") * 10)  # arithmetic passes, junk
        else:
            out.append("".join(rng.choice(_ALPHABET) for _ in range(rng.randrange(0, 16))))
    return out


def expected_valid(values: list[str | None]) -> list[bool]:
    return [v is not None and nhs_number.is_valid(v) for v in values]


def test_agrees_with_the_per_value_check_on_junk() -> None:
    values = junk(20_000, seed=1)
    valid = valid_nhs_numbers(pa.array(values, type=pa.string()))
    assert valid.type == pa.bool_()
    assert valid.null_count == 0
    assert valid.to_pylist() == expected_valid(values)
    digits = normalised_nhs_numbers(pa.array(values, type=pa.string()))
    assert digits.to_pylist() == [None if v is None else nhs_number.normalise(v) for v in values]
    checked = checked_nhs_numbers(pa.array(values, type=pa.string()))
    assert checked.to_pylist() == [
        nhs_number.normalise(v) if v is not None and nhs_number.is_valid(v) else None
        for v in values
    ]
    # The sample holds every kind of case, so the agreement means something.
    assert 0 < sum(expected_valid(values)) < len(values) // 2
    normalised_but_invalid = [
        v
        for v in values
        if v is not None and nhs_number.normalise(v) and not nhs_number.is_valid(v)
    ]
    assert len(normalised_but_invalid) > 100


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("9434765919", True),
        (" 943 476 5919 ", True),
        ("943-476-5919", True),
        ("\u30009434765919\u2028", True),  # unicode whitespace at the ends is stripped
        ("-9434765919-", True),
        ("9434765918", False),  # wrong check digit
        ("943\n4765919", False),  # newline inside is not a separator
        ("943\u00a04765919", False),  # nor a no-break space inside
        (_FULLWIDTH, False),  # digits, but not ASCII ones
        (_ARABIC_INDIC, False),
        ("0000000000", False),  # passes Modulus 11, never issued
        ("4444444444", False),
        ("943476591", False),
        ("94347659190", False),
        ("", False),
        (None, False),
    ],
)
def test_examples(raw: str | None, valid: bool) -> None:
    assert valid_nhs_numbers(pa.array([raw], type=pa.string())).to_pylist() == [valid]
    assert (raw is not None and nhs_number.is_valid(raw)) is valid


def test_check_digit_ten_is_invalid() -> None:
    # nine digits whose Modulus 11 check digit would be 10: no valid number exists
    nines = [f"{i:09d}" for i in range(100_000_000, 100_000_400)]
    impossible = [n for n in nines if nhs_number.check_digit(n) is None]
    assert impossible
    values = [n + d for n in impossible[:20] for d in "0123456789"]
    assert not any(valid_nhs_numbers(pa.array(values)).to_pylist())


def test_sliced_large_empty_and_all_null_arrays() -> None:
    values = junk(3_000, seed=2)
    array = pa.array(values, type=pa.string())
    assert valid_nhs_numbers(array.slice(101, 1_500)).to_pylist() == expected_valid(
        values[101:1601]
    )
    large = array.cast(pa.large_string())
    assert valid_nhs_numbers(large).to_pylist() == expected_valid(values)
    assert valid_nhs_numbers(pa.array([], type=pa.string())).to_pylist() == []
    assert valid_nhs_numbers(pa.array([None, None], type=pa.string())).to_pylist() == [
        False,
        False,
    ]
    with pytest.raises(TypeError):
        valid_nhs_numbers(pa.array([9434765919]))
