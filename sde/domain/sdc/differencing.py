"""Differencing: a new table checked against the project's earlier tables.

Two safe-looking tables can be subtracted: counts of diabetics by region (47 in North)
and, later, of diabetics aged 18 or over by region (45 in North) reveal 2 children. A
cell of the new table is flagged when it and the same cell (same row and column labels)
of an earlier released or pending table differ by more than 0 and less than the
threshold; and when two comparable tables' totals do (a "difference of totals").

Pure. Details name the earlier table, counts of flagged cells and their row and column
labels (categories, not patient values) -- never a count.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sde.domain.disclosure import CheckResult, CheckStatus
from sde.domain.disclosure import count_columns as find_count_columns

__all__ = ["CountTable", "check_differencing", "count_table", "flagged_cells"]

MARGIN_LABELS = frozenset({"all", "total", "totals"})
_LABEL_JOIN = " / "
_SHOWN_POSITIONS = 50

Counts = tuple[tuple[float | None, ...], ...]


@dataclass(frozen=True)
class CountTable:
    """A table of counts: labelled rows and columns; ``None`` where a cell is withheld."""

    name: str
    source: str  # where it came from, e.g. the release request's id
    row_labels: tuple[str, ...]
    column_labels: tuple[str, ...]
    counts: Counts
    # Where each row and column sits in the CSV file (header rows counted), for marking
    # flagged cells on the checker's heatmap; empty when not known.
    grid_rows: tuple[int, ...] = ()
    grid_columns: tuple[int, ...] = ()

    def grid_position(self, row: int, column: int) -> tuple[int, int] | None:
        if row < len(self.grid_rows) and column < len(self.grid_columns):
            return self.grid_rows[row], self.grid_columns[column]
        return None

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.row_labels) or any(
            len(row) != len(self.column_labels) for row in self.counts
        ):
            raise ValueError("counts must have one row per row label and one value per column")

    def total(self) -> float | None:
        """The sum of the cells outside any margin row or column ("All", "Total"); None
        when there is no such cell or one of them is withheld."""
        values = [
            v
            for r, row in enumerate(self.counts)
            if not _is_margin(self.row_labels[r])
            for c, v in enumerate(row)
            if not _is_margin(self.column_labels[c])
        ]
        if not values or any(v is None for v in values):
            return None
        return float(sum(v for v in values if v is not None))


def _is_margin(label: str) -> bool:
    return label.split(_LABEL_JOIN)[0].strip().lower() in MARGIN_LABELS


def _number(cell: str) -> float | None:
    try:
        value = float(cell.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _rows(content: bytes) -> list[list[str]] | None:
    try:
        text = content.decode("utf-8-sig")
        return [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except (UnicodeDecodeError, csv.Error):
        return None


def count_table(
    name: str,
    source: str,
    content: bytes,
    *,
    kind: str,
    metadata: Mapping[str, Any] | None,
    count_columns: Sequence[str],
) -> CountTable | None:
    """The counts a CSV output holds, or None when it holds none (or cannot be read).

    - A stats output whose metadata ``statistics`` include ``count`` (crosstab, pivot
      table, histogram): the CSV ``table.to_csv()`` wrote. Its index levels and header
      rows are told apart with the metadata ``shape`` (CSV columns minus table columns
      are index levels; CSV rows minus table rows are header rows). A histogram's rows
      are labelled by their bin edges. With several statistics, only the ``count``
      block is taken.
    - A plain CSV table: its count columns (declared, else conventionally named, see
      :func:`sde.domain.disclosure.count_columns`) are the columns, the other columns
      joined are the row label.
    """
    rows = _rows(content)
    if not rows:
        return None
    if kind != "table" or (metadata and "statistics" in metadata):
        return _stats_table(name, source, rows, kind, metadata or {})
    return _plain_table(name, source, rows, count_columns)


def _stats_table(
    name: str, source: str, rows: list[list[str]], kind: str, metadata: Mapping[str, Any]
) -> CountTable | None:
    statistics = [str(s) for s in metadata.get("statistics") or ()]
    if "count" not in statistics:
        return None
    shape = metadata.get("shape")
    width = max(len(r) for r in rows)
    if (
        isinstance(shape, Sequence)
        and len(shape) == 2
        and all(isinstance(v, int) for v in shape)
        and 0 < shape[0] < len(rows)
        and 0 < shape[1] <= width
    ):
        header_rows, levels = len(rows) - int(shape[0]), width - int(shape[1])
    else:
        header_rows, levels = 1, 1  # unsure: one header row, the first column labels rows
    rows = [r + [""] * (width - len(r)) for r in rows]
    header, body = rows[:header_rows], rows[header_rows:]
    if str(metadata.get("kind", kind)) in ("histogram", "hist"):
        return _histogram(name, source, header[0], body)
    columns = []
    for c in range(levels, width):
        parts = [h[c].strip() for h in header if h[c].strip()]
        if len(statistics) > 1:
            if not parts or parts[0] != "count":
                continue
            parts = parts[1:] or ["count"]
        columns.append((c, _LABEL_JOIN.join(parts) or f"column {c + 1}"))
    if not columns:
        return None
    row_labels = tuple(
        _LABEL_JOIN.join(v.strip() for v in r[:levels] if v.strip()) or f"row {i + 1}"
        for i, r in enumerate(body)
    )
    return CountTable(
        name,
        source,
        row_labels,
        tuple(label for _, label in columns),
        tuple(tuple(_number(r[c]) for c, _ in columns) for r in body),
        tuple(header_rows + i for i in range(len(body))),
        tuple(c for c, _ in columns),
    )


def _histogram(
    name: str, source: str, header: list[str], body: list[list[str]]
) -> CountTable | None:
    names = [h.strip() for h in header]
    if not {"bin_start", "bin_end", "count"} <= set(names):
        return None
    s, e, n = names.index("bin_start"), names.index("bin_end"), names.index("count")
    return CountTable(
        name,
        source,
        tuple(f"[{r[s].strip()}, {r[e].strip()})" for r in body),
        ("count",),
        tuple((_number(r[n]),) for r in body),
    )  # no grid positions: the caller's header rows are not known here


def _plain_table(
    name: str, source: str, rows: list[list[str]], declared: Sequence[str]
) -> CountTable | None:
    header, body = rows[0], rows[1:]
    wanted = find_count_columns(header, list(declared) or None)
    index = [header.index(c) for c in wanted if c in header]
    if not index:
        return None
    labels = [j for j in range(len(header)) if j not in index]
    width = len(header)
    body = [r + [""] * (width - len(r)) for r in body]
    return CountTable(
        name,
        source,
        tuple(
            _LABEL_JOIN.join(r[j].strip() for j in labels) or f"row {i + 1}"
            for i, r in enumerate(body)
        ),
        tuple(header[j].strip() for j in index),
        tuple(tuple(_number(r[j]) for j in index) for r in body),
        tuple(1 + i for i in range(len(body))),
        tuple(index),
    )


# --- the check ----------------------------------------------------------------------


def _unique(labels: Sequence[str]) -> dict[str, int]:
    """label -> position, for labels that occur once (a repeated label is ambiguous)."""
    seen: dict[str, int] = {}
    repeated = set()
    for i, label in enumerate(labels):
        if label in seen:
            repeated.add(label)
        seen[label] = i
    return {k: v for k, v in seen.items() if k not in repeated}


def _small(a: float | None, b: float | None, threshold: int) -> bool:
    if a is None or b is None:
        return False
    return 0 < abs(a - b) < threshold


def _comparison(
    new: CountTable, old: CountTable, threshold: int
) -> tuple[bool, list[tuple[int, int]], bool]:
    """(comparable, flagged positions in ``new``, totals differ by a small amount)."""
    new_rows, old_rows = _unique(new.row_labels), _unique(old.row_labels)
    new_cols, old_cols = _unique(new.column_labels), _unique(old.column_labels)
    shared_rows = new_rows.keys() & old_rows.keys()
    shared_cols = new_cols.keys() & old_cols.keys()
    comparable = bool(shared_rows or shared_cols)
    flagged = [
        (new_rows[r], new_cols[c])
        for r in sorted(shared_rows, key=new_rows.__getitem__)
        for c in sorted(shared_cols, key=new_cols.__getitem__)
        if _small(
            new.counts[new_rows[r]][new_cols[c]], old.counts[old_rows[r]][old_cols[c]], threshold
        )
    ]
    totals = comparable and _small(new.total(), old.total(), threshold)
    return comparable, flagged, totals


def _margin_cell(table: CountTable) -> Iterator[tuple[int, int]]:
    for r, row_label in enumerate(table.row_labels):
        for c, column_label in enumerate(table.column_labels):
            if _is_margin(row_label) and _is_margin(column_label):
                yield r, c


def flagged_cells(
    new: CountTable, earlier: Sequence[CountTable], threshold: int
) -> set[tuple[int, int]]:
    """Positions (row, column) in ``new`` that differencing flags, for colouring; a small
    difference of totals flags the grand-total cell when the table has one."""
    out: set[tuple[int, int]] = set()
    for old in earlier:
        _, flagged, totals = _comparison(new, old, threshold)
        out.update(flagged)
        if totals:
            out.update(_margin_cell(new))
    return out


def check_differencing(
    new: CountTable, earlier: Sequence[CountTable], threshold: int
) -> CheckResult:
    """The ``differencing`` check of ``new`` against ``earlier`` tables: ``fail`` (an
    exception may be asked for) when a shared cell, or the totals, differ by more than 0
    and less than ``threshold``."""
    compared = 0
    findings: list[dict[str, object]] = []
    flagged_total = 0
    for old in earlier:
        comparable, flagged, totals = _comparison(new, old, threshold)
        compared += comparable
        if not flagged and not totals:
            continue
        flagged_total += len(flagged)
        findings.append(
            {
                "table": old.name,
                "source": old.source,
                "flagged_cells": len(flagged),
                "positions": [
                    {"row": new.row_labels[r], "column": new.column_labels[c]}
                    for r, c in flagged[:_SHOWN_POSITIONS]
                ],
                "grid": [list(p) for r, c in flagged if (p := new.grid_position(r, c)) is not None],
                "totals": totals,
            }
        )
    details: dict[str, object] = {
        "threshold": threshold,
        "earlier_tables": len(earlier),
        "compared": compared,
    }
    if not findings:
        return CheckResult(
            "differencing",
            CheckStatus.PASS,
            f"compared with {compared} of {len(earlier)} earlier table(s): no shared cell or "
            f"total differs by less than {threshold}",
            details,
        )
    totals_with = [str(f["table"]) for f in findings if f["totals"]]
    parts = []
    if flagged_total:
        parts.append(
            f"{flagged_total} cell(s) differ from the same cell of an earlier table by less "
            f"than {threshold}"
        )
    if totals_with:
        parts.append(f"the total differs by less than {threshold} from {', '.join(totals_with)}")
    tables = ", ".join(f"{f['table']} ({f['source']})" for f in findings)
    return CheckResult(
        "differencing",
        CheckStatus.FAIL,
        "; ".join(parts) + f": subtracting them reveals a small group (earlier: {tables})",
        {**details, "findings": findings},
    )
