import datetime as dt

import pytest

from sde.domain import generalise


@pytest.mark.parametrize(
    ("raw", "district"),
    [
        ("LS1 4AP", "LS1"),
        ("ls14ap", "LS1"),
        ("SW1A 1AA", "SW1A"),
        ("M1 1AE", "M1"),
        ("B33 8TH", "B33"),
    ],
)
def test_postcode_district(raw: str, district: str) -> None:
    assert generalise.postcode_district(raw) == district


@pytest.mark.parametrize("raw", ["", "LS1", "12345", "LS1 4APX"])
def test_postcode_district_unreadable(raw: str) -> None:
    assert generalise.postcode_district(raw) is None


def test_dates() -> None:
    d = generalise.parse_date("1961-03-12")
    assert d == dt.date(1961, 3, 12)
    assert generalise.year(d) == 1961
    assert generalise.month(d) == "1961-03"
    assert generalise.parse_date("12/03/1961") is None
    assert generalise.parse_date("1961-02-30") is None
