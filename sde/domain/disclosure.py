"""Automatic statistical disclosure control (SDC) checks on output tables.

Pure functions over a table given as a header and rows of strings (as read from CSV).
Results name the rule, the column and how many cells fired -- never a cell's value.
A later issue adds dominance, p%, differencing and model checks; this module is where
they go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

COUNT_COLUMN_NAMES = frozenset({"n", "count", "counts", "frequency", "patients", "people"})


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 - a status word, not a password
    FAIL = "fail"
    REVIEW = "review"


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    message: str
    details: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "details": dict(self.details),
        }


def count_columns(header: Sequence[str], declared: Sequence[str] | None = None) -> list[str]:
    """The columns holding counts: those declared, else those with a conventional name
    (``n``, ``count``, ``*_count``, ``n_*``)."""
    if declared:
        return list(declared)
    found = []
    for name in header:
        low = name.strip().lower()
        if low in COUNT_COLUMN_NAMES or low.endswith("_count") or low.startswith("n_"):
            found.append(name)
    return found


def check_frequency_table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    min_cell_count: int,
    declared_counts: Sequence[str] | None = None,
) -> list[CheckResult]:
    """Checks for a frequency table: it has count columns, every count is a whole
    non-negative number, and no non-zero count is below ``min_cell_count``."""
    results: list[CheckResult] = []
    cols = count_columns(header, declared_counts)
    missing = [c for c in cols if c not in header]
    if not cols or missing:
        what = f"columns {', '.join(missing)} are not in the table" if missing else "none found"
        return [
            CheckResult(
                "count_columns",
                CheckStatus.FAIL,
                f"a frequency table needs its count columns named ({what})",
            )
        ]
    results.append(
        CheckResult(
            "count_columns",
            CheckStatus.PASS,
            f"count columns: {', '.join(cols)}",
            {"columns": cols},
        )
    )
    index = [header.index(c) for c in cols]
    unreadable = 0
    small = 0
    zeros = 0
    cells = 0
    for row in rows:
        for i in index:
            cells += 1
            raw = row[i].strip() if i < len(row) else ""
            try:
                value = float(raw)
            except ValueError:
                unreadable += 1
                continue
            if value < 0 or value != int(value):
                unreadable += 1
            elif value == 0:
                zeros += 1
            elif value < min_cell_count:
                small += 1
    if unreadable:
        results.append(
            CheckResult(
                "counts_are_whole_numbers",
                CheckStatus.FAIL,
                f"{unreadable} of {cells} count cells are not whole non-negative numbers",
                {"cells": cells, "failing_cells": unreadable},
            )
        )
    else:
        results.append(
            CheckResult(
                "counts_are_whole_numbers",
                CheckStatus.PASS,
                f"all {cells} count cells are whole non-negative numbers",
                {"cells": cells},
            )
        )
    if small:
        results.append(
            CheckResult(
                "min_cell_count",
                CheckStatus.FAIL,
                f"{small} of {cells} cells are below the minimum count of {min_cell_count}; "
                "suppress or combine them",
                {"cells": cells, "failing_cells": small, "threshold": min_cell_count},
            )
        )
    else:
        results.append(
            CheckResult(
                "min_cell_count",
                CheckStatus.PASS,
                f"no cell of {cells} is below the minimum count of {min_cell_count}",
                {"cells": cells, "threshold": min_cell_count, "zero_cells": zeros},
            )
        )
    return results


def overall(results: Sequence[CheckResult]) -> CheckStatus:
    statuses = {r.status for r in results}
    if CheckStatus.FAIL in statuses or not results:
        return CheckStatus.FAIL
    if CheckStatus.REVIEW in statuses:
        return CheckStatus.REVIEW
    return CheckStatus.PASS
