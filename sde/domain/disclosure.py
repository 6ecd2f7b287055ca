"""Automatic statistical disclosure control (SDC) checks on CSV frequency tables.

Pure functions over a table given as a header and rows of strings (as read from CSV),
built on the per-cell rules of :mod:`sde.domain.sdc` (the same ``threshold`` and
``zero`` rules ``sde.workspace.stats`` applies). Results name the rule, the column and
how many cells fired -- never a cell's value. Tables made with ``sde.workspace.stats``
carry their own per-cell results (dominance, p%, models, survival) in their metadata.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from sde.domain.sdc import RiskAppetite, Rule, count_masks

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
    appetite: RiskAppetite | None = None,
) -> list[CheckResult]:
    """Checks for a frequency table: it has count columns, every count is a whole
    non-negative number, and no non-zero count is below ``min_cell_count`` (the
    ``threshold`` rule). With a risk ``appetite``, zero cells are also reported with the
    status it gives them (``zeros``: pass, review or fail)."""
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
    readable: list[int] = []
    for row in rows:
        for i in index:
            raw = row[i].strip() if i < len(row) else ""
            try:
                value = float(raw)
            except ValueError:
                unreadable += 1
                continue
            if not math.isfinite(value) or value < 0 or value != int(value):
                unreadable += 1
            else:
                readable.append(int(value))
    cells = unreadable + len(readable)
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
    rules = appetite or RiskAppetite(min_cell_count=min_cell_count)
    if appetite is not None and appetite.min_cell_count != min_cell_count:
        rules = RiskAppetite(**{**appetite.to_json(), "min_cell_count": min_cell_count})
    masks = dict(count_masks(np.asarray(readable, dtype=np.int64), rules))
    small = int(masks[Rule.THRESHOLD].sum())
    zeros = sum(1 for v in readable if v == 0)
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
    if appetite is not None:
        # Zeros are reported only under an explicit risk appetite (the airlock's
        # legacy callers pass none, and for them zeros pass as before).
        status = CheckStatus(appetite.zeros) if zeros else CheckStatus.PASS
        results.append(
            CheckResult(
                "zeros",
                status,
                f"{zeros} of {cells} cells are zero"
                + ("; a zero can reveal that nobody in a group has an attribute" if zeros else ""),
                {"cells": cells, "zero_cells": zeros, "policy": appetite.zeros},
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
