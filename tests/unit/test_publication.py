"""Rounding counts for the public register."""

from __future__ import annotations

import pytest

from sde.domain.publication import FEWER_THAN_TEN, NOT_RECORDED, publishable_count, rounded


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, 0),
        (1, 0),
        (2, 0),
        (3, 5),
        (7, 5),
        (8, 10),
        (10, 10),
        (12, 10),
        (13, 15),
        (15, 15),
        (17, 15),
        (18, 20),
        (1234, 1235),
        (1232, 1230),
    ],
)
def test_rounded_to_nearest_five_halves_up(count: int, expected: int) -> None:
    assert rounded(count) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "0"),
        (1, FEWER_THAN_TEN),
        (4, FEWER_THAN_TEN),
        (9, FEWER_THAN_TEN),
        (10, "10"),
        (11, "10"),
        (13, "15"),
        (97, "95"),
        (98, "100"),
        (None, NOT_RECORDED),
    ],
)
def test_publishable_count(count: int | None, expected: str) -> None:
    assert publishable_count(count) == expected


def test_no_small_count_is_ever_shown_exactly() -> None:
    shown = {publishable_count(n) for n in range(1, 10)}
    assert shown == {FEWER_THAN_TEN}
    assert all(int(publishable_count(n)) % 5 == 0 for n in range(10, 500))


@pytest.mark.parametrize("bad", [-1, -10])
def test_negative_counts_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="negative"):
        publishable_count(bad)


@pytest.mark.parametrize("bad", [True, 2.5, "3"])
def test_non_integers_refused(bad: object) -> None:
    with pytest.raises(TypeError):
        rounded(bad)  # type: ignore[arg-type]
