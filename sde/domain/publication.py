"""Rounding counts for publication. Pure rules, no I/O.

The public register never shows an exact small count: every count is rounded to the
nearest 5 (halves upwards), and any count from 1 to 9 is shown as "fewer than 10" so a
reader cannot tell 1 from 9. Zero stays "0": that nothing was removed is not disclosive.
"""

from __future__ import annotations

FEWER_THAN_TEN = "fewer than 10"
NOT_RECORDED = "not recorded"
ROUND_TO = 5
SMALL_BELOW = 10


def rounded(count: int) -> int:
    """``count`` rounded to the nearest 5, halves upwards (12 → 10, 13 → 15)."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError("a count is a whole number")
    if count < 0:
        raise ValueError("a count cannot be negative")
    return (count + ROUND_TO // 2) // ROUND_TO * ROUND_TO


def publishable_count(count: int | None) -> str:
    """The words the register shows for ``count``: ``"0"``, ``"fewer than 10"`` for 1 to
    9, otherwise the count rounded to the nearest 5; ``"not recorded"`` for ``None``."""
    if count is None:
        return NOT_RECORDED
    value = rounded(count)
    if 0 < count < SMALL_BELOW:
        return FEWER_THAN_TEN
    return str(value)
