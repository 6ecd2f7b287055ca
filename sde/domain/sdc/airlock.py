"""Every automatic check on one output file, and the table of per-cell rules a checker sees.

Pure: the same function runs in the notebook (``check_release``, before submission) and
in the airlock (when a request is filed or resubmitted), so a researcher sees what would
fail before a checker does. The identifier scan is given as a function.

A file gets, in order:

1. the file checks of :mod:`sde.domain.sdc.files` (type, size, readable, row-level data,
   pseudonyms, dates of birth, free text, identifiers, a figure's table);
2. for a table made by ``sde.workspace.stats``: the rules that fired on its cells, from
   its disclosure metadata, each with the severity the environment's risk appetite gives
   it; for any other CSV table: the frequency-table checks (count columns, threshold,
   zeros);
3. for a table of counts: differencing against the project's earlier tables.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from sde.domain.disclosure import CheckResult, CheckStatus, check_frequency_table
from sde.domain.disclosure import count_columns as find_count_columns
from sde.domain.sdc.appetite import RiskAppetite
from sde.domain.sdc.differencing import CountTable, check_differencing, count_table
from sde.domain.sdc.files import (
    BLOCKING_RULES,
    STATS_KINDS,
    FileRules,
    check_file,
    kind_category,
)
from sde.domain.sdc.rules import DESCRIPTIONS, RANK, Rule, severity

# Rules no exception can override (mirrors ``blocking_rules`` in policies/egress.rego;
# a test keeps the two equal).
BLOCKING = frozenset({*BLOCKING_RULES, "count_columns", "counts_are_whole_numbers", "sdc_metadata"})

Cell = tuple[str, tuple[str, ...], str]  # text, rules fired, status


def worst(statuses: Collection[str]) -> str:
    """The worst of some statuses; no status at all is a fail (fail closed)."""
    if not statuses:
        return "fail"
    return max(statuses, key=lambda s: RANK.get(s, 2))


def blocking_failures(results: Sequence[CheckResult]) -> list[str]:
    return sorted(
        {r.name for r in results if r.name in BLOCKING and r.status is not CheckStatus.PASS}
    )


def _csv_rows(content: bytes) -> list[list[str]] | None:
    try:
        return list(csv.reader(io.StringIO(content.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return None


def metadata_results(
    kind: str, metadata: Mapping[str, Any] | None, appetite: RiskAppetite
) -> list[CheckResult]:
    """The per-cell rules a stats output's metadata reports, under the airlock's appetite."""
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("rules"), Mapping):
        return [
            CheckResult(
                "sdc_metadata",
                CheckStatus.FAIL,
                f"a {kind} output needs the disclosure metadata sde.workspace.stats writes "
                "with it; make it with sde.workspace.stats",
            )
        ]
    results = [
        CheckResult(
            "sdc_metadata",
            CheckStatus.PASS,
            f"checked cell by cell in the workspace ({kind})",
            {"statistics": list(metadata.get("statistics") or [])},
        )
    ]
    parameters = metadata.get("parameters")
    expected = appetite.to_json()
    if isinstance(parameters, Mapping):
        differing = sorted(k for k, v in expected.items() if parameters.get(k) != v)
    else:
        differing = sorted(expected)
    if differing:
        results.append(
            CheckResult(
                "parameters",
                CheckStatus.REVIEW,
                "checked in the workspace with parameters other than this environment's: "
                + ", ".join(differing),
                {"differing": differing},
            )
        )
    for rule, n in sorted(_visible_rules(metadata).items()):
        try:
            count = int(n)
        except (TypeError, ValueError):
            count = 0
        status = severity(str(rule), appetite)
        try:
            description = DESCRIPTIONS[Rule(str(rule))]
        except ValueError:
            description = "a rule this airlock does not know"
            status = "fail"
        results.append(
            CheckResult(
                str(rule),
                CheckStatus(status),
                f"{count} cell(s): {description}",
                {"cells": count},
            )
        )
    return results


WITHHELD = frozenset({Rule.SUPPRESSED.value, Rule.SECONDARY.value})


def _visible_rules(metadata: Mapping[str, Any]) -> dict[str, int]:
    """Rules fired per rule name, not counting cells that were withheld (suppression
    leaves the cell empty: what fired on it no longer shows). From the per-cell list when
    there is one, else the metadata's totals."""
    cells = metadata.get("cells")
    if not isinstance(cells, Sequence) or isinstance(cells, str):
        return {str(k): v for k, v in metadata["rules"].items()}
    counts: dict[str, int] = {}
    for cell in cells:
        rules = cell.get("rules") if isinstance(cell, Mapping) else None
        if not isinstance(rules, Sequence) or isinstance(rules, str):
            continue
        names = {str(r) for r in rules}
        if names & WITHHELD:
            names &= WITHHELD
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    # Whole-output rules (a model's residual degrees of freedom) are not per cell.
    for rule, n in metadata["rules"].items():
        if str(rule) not in counts and str(rule) == Rule.LOW_DOF.value:
            counts[str(rule)] = n
    return counts


def check_output(
    name: str,
    content: bytes,
    *,
    kind: str,
    metadata: Mapping[str, Any] | None,
    count_columns: Sequence[str],
    other_names: Collection[str],
    appetite: RiskAppetite,
    file_rules: FileRules,
    earlier: Sequence[CountTable] = (),
    scan_text: Callable[[str], Mapping[str, int]] | None = None,
) -> list[CheckResult]:
    """Every automatic check on one file (see the module's docstring)."""
    results = check_file(
        name,
        content,
        kind=kind,
        metadata=metadata,
        other_names=other_names,
        rules=file_rules,
        scan_text=scan_text,
    )
    stop = {"file_type", "file_size", "readable"}
    if any(r.name in stop and r.status is CheckStatus.FAIL for r in results):
        return results
    if kind_category(kind) != "table":
        return results
    if kind in STATS_KINDS:
        results.extend(metadata_results(kind, metadata, appetite))
    else:
        rows = _csv_rows(content)
        if not rows:
            return results
        results.extend(
            check_frequency_table(
                rows[0], rows[1:], appetite.min_cell_count, count_columns or None, appetite
            )
        )
    table = count_table(
        name, "this request", content, kind=kind, metadata=metadata, count_columns=count_columns
    )
    if table is not None:
        if kind in STATS_KINDS and isinstance(metadata, Mapping):
            results.extend(_metadata_agrees(table, metadata, appetite))
        results.append(check_differencing(table, earlier, appetite.min_cell_count))
    return results


def _metadata_agrees(
    table: CountTable, metadata: Mapping[str, Any], appetite: RiskAppetite
) -> list[CheckResult]:
    """A stats table of counts must not show more small cells than its metadata reports:
    metadata edited by hand (or from another table) fails closed."""
    small = sum(
        1
        for row in table.counts
        for value in row
        if value is not None and 0 < value < appetite.min_cell_count
    )
    rules = metadata.get("rules")
    reported = 0
    if isinstance(rules, Mapping):
        try:
            reported = int(rules.get(Rule.THRESHOLD.value, 0))
        except (TypeError, ValueError):
            reported = 0
    if small > reported:
        return [
            CheckResult(
                "sdc_metadata",
                CheckStatus.FAIL,
                f"the table shows {small} count cell(s) below {appetite.min_cell_count} but its "
                f"metadata reports {reported}: the metadata does not belong to this table",
                {"shown": small, "reported": reported},
            )
        ]
    return []


def cell_grid(
    content: bytes,
    *,
    kind: str,
    metadata: Mapping[str, Any] | None,
    count_columns: Sequence[str],
    appetite: RiskAppetite,
    checks: Sequence[Mapping[str, Any]] = (),
) -> list[list[Cell]] | None:
    """A CSV table as rows of (text, rules fired, status), header rows included, for the
    checker's heatmap; cells the ``differencing`` check flagged (in ``checks``, as stored)
    are marked too. None when the file is not a readable table."""
    if kind_category(kind) != "table":
        return None
    rows = _csv_rows(content)
    if not rows:
        return None
    rules: dict[tuple[int, int], list[str]] = {}
    if kind in STATS_KINDS and isinstance(metadata, Mapping):
        shape = metadata.get("shape")
        width = max(len(r) for r in rows)
        if isinstance(shape, Sequence) and len(shape) == 2:
            header_rows = max(len(rows) - int(shape[0]), 1)
            levels = max(width - int(shape[1]), 0)
        else:
            header_rows, levels = 1, 1
        for cell in metadata.get("cells") or ():
            if not isinstance(cell, Mapping):
                continue
            try:
                r = header_rows + int(cell["row"])
                c = levels + int(cell["column"])
            except (KeyError, TypeError, ValueError):
                continue
            rules.setdefault((r, c), []).extend(str(x) for x in cell.get("rules") or ())
    elif kind not in STATS_KINDS:
        header = rows[0]
        for col_name in find_count_columns(header, count_columns or None):
            if col_name not in header:
                continue
            c = header.index(col_name)
            for r, row in enumerate(rows[1:], start=1):
                try:
                    value = float(row[c])
                except (IndexError, ValueError):
                    continue
                if value == 0:
                    rules.setdefault((r, c), []).append(Rule.ZERO.value)
                elif 0 < value < appetite.min_cell_count:
                    rules.setdefault((r, c), []).append(Rule.THRESHOLD.value)
    for check in checks:
        if check.get("name") != "differencing":
            continue
        details = check.get("details")
        findings = details.get("findings") if isinstance(details, Mapping) else None
        for finding in findings or ():
            for position in finding.get("grid") or () if isinstance(finding, Mapping) else ():
                try:
                    r, c = int(position[0]), int(position[1])
                except (TypeError, ValueError, IndexError):
                    continue
                if "differencing" not in rules.get((r, c), []):
                    rules.setdefault((r, c), []).append("differencing")
    grid: list[list[Cell]] = []
    for r, row in enumerate(rows):
        line: list[Cell] = []
        for c, text in enumerate(row):
            fired = tuple(rules.get((r, c), ()))
            status = worst([severity(x, appetite) for x in fired]) if fired else "pass"
            line.append((text, fired, status))
        grid.append(line)
    return grid
