import pytest

from sde.domain import nhs_number


@pytest.mark.parametrize("raw", ["9434765919", "943 476 5919", "943-476-5919", " 9434765870 "])
def test_valid_numbers_in_common_layouts(raw: str) -> None:
    assert nhs_number.is_valid(raw)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("9434765918", "wrong check digit"),
        ("943476591", "nine digits"),
        ("94347659190", "eleven digits"),
        ("943476591X", "not a digit"),
        ("0000000000", "junk: one repeated digit passes Modulus 11"),
        ("1111111111", "junk"),
        ("", "empty"),
        ("١٢٣٤٥٦٧٨٩٠", "non-ASCII digits"),
    ],
)
def test_invalid_numbers(raw: str, why: str) -> None:
    assert not nhs_number.is_valid(raw), why


def test_check_digit_ten_means_no_valid_number() -> None:
    # 1,2,3... weights give remainder 1 -> check digit 10 -> invalid
    nine = next(
        f"{i:09d}"
        for i in range(100000000, 100001000)
        if nhs_number.check_digit(f"{i:09d}") is None
    )
    assert nhs_number.complete(nine) is None


def test_complete_produces_valid_numbers() -> None:
    made = [nhs_number.complete(f"{i:09d}") for i in range(943476590, 943476600)]
    valid = [n for n in made if n is not None]
    assert len(valid) >= 8
    assert all(nhs_number.is_valid(n) for n in valid)


def test_normalise() -> None:
    assert nhs_number.normalise("943 476-5919") == "9434765919"
    assert nhs_number.normalise("94347") is None


def test_check_digit_needs_nine_digits() -> None:
    with pytest.raises(ValueError, match="nine digits"):
        nhs_number.check_digit("12345")


def test_check_digit_matches_the_weighted_definition() -> None:
    for i in range(100000000, 100050000, 7):
        nine = f"{i:09d}"
        total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
        expected = {11: 0, 10: None}.get(11 - total % 11, 11 - total % 11)
        assert nhs_number.check_digit(nine) == expected
