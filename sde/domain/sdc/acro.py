"""A release request as ACRO's ``results.json``, so checkers can open it in the SACRO viewer.

Pure: a plain record of a request in, a JSON-ready dict out. The layout is the one ACRO
0.4.x writes (``acro/record.py`` ``Records.finalise_json`` with the per-file ``sdc``
dictionary of ``acro/utils.py`` ``get_table_sdc``), which is what the SACRO viewer
(``AI-SDC/SACRO-Viewer``, ``ACRO_SUPPORTED_VERSION = "0.4.x"``) reads. Checked against
the ``results.json`` ACRO 0.4.12 itself writes for the same table (see
``tests/unit/test_sdc_acro.py``)::

    {"version": "0.4.12",
     "results": {<uid>: {"uid", "status", "type", "properties", "files", "outcome",
                         "command", "summary", "timestamp", "comments", "exception"}}}

where each ``files`` entry is ``{"name": <file>, "sdc": {"summary": {...}, "cells":
{...}}}``: ``summary`` has ``suppressed`` (bool) and a count of cells per rule, ``cells``
the ``[row, column]`` positions (0-based, in the table body, index columns excluded) of
the cells each rule flagged. ``outcome`` is the table of per-cell outcomes as pandas'
``DataFrame.to_json()`` writes it: ``{column label: {row label: "threshold; " | "ok"}}``.
The viewer outlines the cells listed in ``outcome`` and ``sdc.cells``; it needs the
files themselves (and ``checksums/<name>.txt``) next to ``results.json``.

ACRO 1.0 renamed its rules after the SDC ontology (``MinimumThresholdCheck``, ...); the
viewer's code still understands the 0.4 names, so those are the ones written here.

One uid per file (the file name). Our rules map onto ACRO's keys as follows:

============================  =======================
ours (per cell)               ACRO ``sdc`` key
============================  =======================
``threshold``                 ``threshold``
``nk_dominance``              ``nk-rule``
``p_percent``                 ``p-ratio``
``negative``                  ``negative``
============================  =======================

ACRO's ``missing`` (missing values in the data) and ``all-values-are-same`` (a mode
cell whose contributors all share one value) have no counterpart here and are always 0.
Our rules with no ACRO counterpart -- ``zero``, ``min_max``, ``low_dof``,
``survival_at_risk``, ``survival_events``, ``bin_edges``, and the mitigation tags
``suppressed`` and ``secondary_suppression`` -- are written under their own names after
ACRO's keys, so the viewer still lists them against the cells. Models carry their
residual degrees of freedom as ``properties.dof``, as ACRO's regressions do. Checks on
a whole file (file type, size, row-level data, identifiers, a figure's table, ...) have
no ACRO counterpart either: those that did not pass are listed in ``comments`` and
``summary`` so a checker using the viewer sees them.

The ``status`` of an output is the worst of the airlock's automatic checks on the file
(and of the stats metadata's status), not ACRO's own re-derivation; a file with neither
is ``review``, as ACRO marks custom outputs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

ACRO_VERSION = "0.4.12"

# Our per-cell rule -> ACRO 0.4's sdc key.
ACRO_RULES: dict[str, str] = {
    "threshold": "threshold",
    "nk_dominance": "nk-rule",
    "p_percent": "p-ratio",
    "negative": "negative",
}
# The keys ACRO 0.4 always writes, in its order.
ACRO_KEYS = ("negative", "missing", "threshold", "p-ratio", "nk-rule", "all-values-are-same")

TABLE_KINDS = frozenset({"crosstab", "pivot_table", "histogram", "hist", "survival", "table"})
MODEL_KINDS = frozenset({"ols", "logit", "probit"})
# ACRO's ``properties.method`` for our stats kinds.
METHODS = {
    "crosstab": "crosstab",
    "pivot_table": "pivot_table",
    "histogram": "hist",
    "hist": "hist",
    "survival": "survival_table",
    "ols": "ols",
    "logit": "logit",
    "probit": "probit",
}
_RANK = {"pass": 0, "review": 1, "fail": 2}


def acro_results(request: Mapping[str, Any]) -> dict[str, Any]:
    """ACRO's ``results.json`` for a release request given as a plain record::

    {"id": "rr-...", "author": "alice", "title": "...", "status": "submitted",
     "created_at": "2026-11-24T18:00:00+00:00",
     "files": [{"name": "by_sex.csv", "kind": "crosstab",
                "checks": [CheckResult.to_json(), ...],
                "metadata": SdcOutput.to_json() | {"table": ...} | None,
                "exception": "..." | None, "description": "..." | None,
                "content": b"..." (optional: a table's CSV, for the row and
                           column labels of ``outcome``)}]}
    """
    files = request.get("files") or ()
    results: dict[str, Any] = {}
    timestamp = _text(request.get("created_at") or request.get("timestamp"))
    for file in files:
        uid = str(file["name"])
        results[uid] = _result(file, timestamp)
    return {
        "version": ACRO_VERSION,
        "results": results,
        "sde": {
            "request": _text(request.get("id")),
            "project": _text(request.get("project_id") or request.get("project")),
            "title": _text(request.get("title")),
            "author": _text(request.get("author")),
            "status": _text(request.get("status")),
        },
    }


def _result(file: Mapping[str, Any], timestamp: str) -> dict[str, Any]:
    name = str(file["name"])
    kind = str(file.get("kind") or "table")
    checks: Sequence[Mapping[str, Any]] = file.get("checks") or ()
    raw_metadata = file.get("metadata")
    metadata: Mapping[str, Any] = raw_metadata if isinstance(raw_metadata, Mapping) else {}
    cells: Sequence[Mapping[str, Any]] = metadata.get("cells") or ()
    is_stats = "cells" in metadata and "shape" in metadata
    status = _status(checks, metadata.get("status") if is_stats else None)

    if is_stats and kind in MODEL_KINDS:
        acro_type = "regression"
    elif is_stats or kind in TABLE_KINDS:
        acro_type = "table"
    else:
        acro_type = "custom"

    properties: dict[str, Any] = {}
    if acro_type != "custom":
        properties["method"] = METHODS.get(kind, kind)
    details = metadata.get("details")
    if isinstance(details, Mapping) and "df_resid" in details:
        properties["dof"] = details["df_resid"]
    if metadata.get("mitigation"):
        properties["mitigation"] = metadata["mitigation"]
    if kind == "figure" and metadata.get("table"):
        properties["table"] = metadata["table"]

    sdc: dict[str, Any] = {}
    outcome: dict[str, dict[str, str]] = {}
    counts: dict[str, int] = {}
    if is_stats and acro_type == "table":
        sdc, counts = _sdc(cells, suppressed=bool(metadata.get("mitigation") == "suppression"))
        outcome = _outcome(metadata, cells, file.get("content"))
    elif is_stats:
        counts = _rule_counts(cells)

    comments: list[str] = []
    if file.get("description"):
        comments.append(str(file["description"]))
    problems = [c for c in checks if str(c.get("status")) != "pass"]
    for check in problems:
        comments.append(f"{check.get('name')} ({check.get('status')}): {check.get('message')}")

    return {
        "uid": name,
        "status": status,
        "type": acro_type,
        "properties": properties,
        "files": [{"name": name, "sdc": sdc}],
        "outcome": outcome,
        "command": f"sde.workspace.stats.{kind}" if is_stats else "custom",
        "summary": _summary(
            status, counts, problems, suppressed=bool(sdc and sdc["summary"]["suppressed"])
        ),
        "timestamp": timestamp,
        "comments": comments,
        "exception": str(file.get("exception") or ""),
    }


def _status(checks: Sequence[Mapping[str, Any]], metadata_status: object) -> str:
    statuses = [str(c.get("status")) for c in checks]
    if isinstance(metadata_status, str):
        statuses.append(metadata_status)
    if not statuses:
        return "review"
    if any(s not in _RANK for s in statuses):
        return "fail"  # an unknown status word: fail closed
    return max(statuses, key=_RANK.__getitem__)


def _acro_name(rule: str) -> str:
    return ACRO_RULES.get(rule, rule)


def _rule_counts(cells: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in cells:
        for rule in cell.get("rules") or ():
            key = _acro_name(str(rule))
            counts[key] = counts.get(key, 0) + 1
    return counts


def _sdc(
    cells: Sequence[Mapping[str, Any]], *, suppressed: bool
) -> tuple[dict[str, Any], dict[str, int]]:
    summary: dict[str, Any] = {"suppressed": suppressed, **dict.fromkeys(ACRO_KEYS, 0)}
    positions: dict[str, list[list[int]]] = {key: [] for key in ACRO_KEYS}
    for cell in cells:
        for rule in cell.get("rules") or ():
            key = _acro_name(str(rule))
            summary[key] = int(summary.get(key, 0)) + 1
            positions.setdefault(key, []).append([int(cell["row"]), int(cell["column"])])
    counts = {k: int(v) for k, v in summary.items() if k != "suppressed" and v}
    return {"summary": summary, "cells": positions}, counts


def _outcome(
    metadata: Mapping[str, Any], cells: Sequence[Mapping[str, Any]], content: object
) -> dict[str, dict[str, str]]:
    """``{column label: {row label: outcome}}`` over every cell of the table, as ACRO
    writes its outcome DataFrame: the flagged rules each followed by ``"; "``, or
    ``"ok"``. Labels come from the CSV when given, else from the metadata, else the
    position."""
    shape = metadata.get("shape") or (0, 0)
    n_rows, n_cols = int(shape[0]), int(shape[1])
    row_labels = [str(r) for r in range(n_rows)]
    col_labels = [str(c) for c in range(n_cols)]
    for cell in cells:
        r, c = int(cell["row"]), int(cell["column"])
        if 0 <= r < n_rows and cell.get("row_label") is not None:
            row_labels[r] = str(cell["row_label"])
        if 0 <= c < n_cols and cell.get("column_label") is not None:
            col_labels[c] = str(cell["column_label"])
    from_csv = _csv_labels(content, n_rows, n_cols)
    if from_csv is not None:
        row_labels, col_labels = from_csv
    row_labels, col_labels = _unique(row_labels), _unique(col_labels)
    grid = [["" for _ in range(n_cols)] for _ in range(n_rows)]
    for cell in cells:
        r, c = int(cell["row"]), int(cell["column"])
        if 0 <= r < n_rows and 0 <= c < n_cols:
            grid[r][c] += "".join(f"{_acro_name(str(rule))}; " for rule in cell.get("rules") or ())
    return {
        col_labels[c]: {row_labels[r]: grid[r][c] or "ok" for r in range(n_rows)}
        for c in range(n_cols)
    }


def _csv_labels(content: object, n_rows: int, n_cols: int) -> tuple[list[str], list[str]] | None:
    """Row and column labels of a table written by ``DataFrame.to_csv()`` (index
    included): the index columns are those left of the ``n_cols`` body columns, and the
    header rows are those above the ``n_rows`` body rows."""
    if isinstance(content, bytes | bytearray):
        try:
            text = bytes(content).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif isinstance(content, str):
        text = content
    else:
        return None
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error:
        return None
    if len(rows) < n_rows or not rows:
        return None
    width = len(rows[0])
    n_index = width - n_cols
    n_header = len(rows) - n_rows
    if n_index < 0 or n_header < 1 or any(len(row) != width for row in rows):
        return None
    header = rows[:n_header]
    body = rows[n_header:]
    col_labels = [_join(h[n_index + c] for h in header) for c in range(n_cols)]
    row_labels = [_join(row[:n_index]) if n_index else str(i) for i, row in enumerate(body)]
    return row_labels, col_labels


def _join(parts: Iterable[str]) -> str:
    return " / ".join(p for p in parts if p)


def _unique(labels: list[str]) -> list[str]:
    """JSON object keys must differ: a repeated label gets its position appended."""
    seen: set[str] = set()
    out = []
    for i, label in enumerate(labels):
        key = label if label not in seen else f"{label} ({i})"
        seen.add(key)
        out.append(key)
    return out


def _summary(
    status: str,
    counts: Mapping[str, int],
    problems: Sequence[Mapping[str, Any]],
    *,
    suppressed: bool,
) -> str:
    """ACRO's summary line: ``"fail; threshold: 2 cells may need suppressing; "``."""
    how = "suppressed" if suppressed else "may need suppressing"
    parts = [f"{rule}: {n} cells {how}; " for rule, n in counts.items() if n]
    cell_rules = set(counts)
    for check in problems:
        name = str(check.get("name"))
        if name not in cell_rules and _acro_name(name) not in cell_rules:
            parts.append(f"{name}: {check.get('status')}; ")
    return f"{status}; {''.join(parts)}" if parts else status


def _text(value: object) -> str:
    if value is None:
        return ""
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return str(isoformat())
    return str(value)
