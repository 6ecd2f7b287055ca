"""A release request in ACRO 0.4's results.json layout (what the SACRO viewer opens)."""

from __future__ import annotations

import json
from typing import Any

from sde.domain.sdc.acro import ACRO_KEYS, acro_results

CSV = b"region,F,M\na,52,47\nb,49,44\nc,3,5\n"


def crosstab_metadata(cells: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """The shape of SdcOutput.to_json() for a 3 x 2 crosstab."""
    return {
        "kind": "crosstab",
        "statistics": ["count"],
        "status": status,
        "shape": [3, 2],
        "parameters": {"min_cell_count": 10},
        "rules": {},
        "cells": cells,
        "details": {"margins": False},
        "mitigation": None,
    }


FAILING_CELLS = [
    {"row": 2, "column": 0, "row_label": "c", "column_label": "F", "rules": ["threshold"]},
    {"row": 2, "column": 1, "row_label": "c", "column_label": "M", "rules": ["threshold"]},
    {"row": 0, "column": 1, "row_label": "a", "column_label": "M", "rules": ["zero"]},
]


def request(*files: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "rr-1",
        "author": "alice",
        "title": "t",
        "status": "submitted",
        "created_at": "2026-11-24T18:00:00+00:00",
        "files": list(files),
    }


def check(name: str, status: str, message: str = "m") -> dict[str, Any]:
    return {"name": name, "status": status, "message": message, "details": {}}


def test_failing_crosstab_lists_cells_under_acro_rule_keys() -> None:
    out = acro_results(
        request(
            {
                "name": "by_region.csv",
                "kind": "crosstab",
                "checks": [check("threshold", "fail", "2 cells below 10")],
                "metadata": crosstab_metadata(FAILING_CELLS, "fail"),
                "content": CSV,
            }
        )
    )
    json.dumps(out)  # JSON-ready
    assert out["version"].startswith("0.4.")
    result = out["results"]["by_region.csv"]
    assert result["uid"] == "by_region.csv"
    assert result["status"] == "fail"
    assert result["type"] == "table"
    assert result["properties"] == {"method": "crosstab"}
    [file] = result["files"]
    assert file["name"] == "by_region.csv"
    summary = file["sdc"]["summary"]
    assert summary["suppressed"] is False
    assert summary["threshold"] == 2
    assert all(summary[k] == 0 for k in ACRO_KEYS if k != "threshold")
    assert file["sdc"]["cells"]["threshold"] == [[2, 0], [2, 1]]
    assert file["sdc"]["cells"]["nk-rule"] == []
    # A rule ACRO lacks is listed under its own name, after ACRO's keys.
    assert file["sdc"]["cells"]["zero"] == [[0, 1]]
    assert list(file["sdc"]["cells"])[: len(ACRO_KEYS)] == list(ACRO_KEYS)
    assert result["outcome"] == {
        "F": {"a": "ok", "b": "ok", "c": "threshold; "},
        "M": {"a": "zero; ", "b": "ok", "c": "threshold; "},
    }
    assert result["summary"].startswith("fail; threshold: 2 cells may need suppressing; ")
    assert result["timestamp"] == "2026-11-24T18:00:00+00:00"
    assert result["exception"] == ""
    assert result["comments"] == ["threshold (fail): 2 cells below 10"]
    for key in ("command", "summary", "timestamp", "comments", "exception", "outcome"):
        assert key in result


def test_dominance_and_p_percent_map_to_acro_names() -> None:
    cells = [
        {"row": 1, "column": 0, "row_label": "b", "column_label": "F", "rules": ["nk_dominance"]},
        {
            "row": 1,
            "column": 1,
            "row_label": "b",
            "column_label": "M",
            "rules": ["nk_dominance", "p_percent"],
        },
    ]
    out = acro_results(
        request(
            {
                "name": "mean.csv",
                "kind": "crosstab",
                "checks": [check("dominance", "fail")],
                "metadata": crosstab_metadata(cells, "fail"),
            }
        )
    )
    file = out["results"]["mean.csv"]["files"][0]
    assert file["sdc"]["summary"]["nk-rule"] == 2
    assert file["sdc"]["summary"]["p-ratio"] == 1
    assert file["sdc"]["cells"]["p-ratio"] == [[1, 1]]
    # Without the CSV, labels come from the metadata (positions where unknown).
    outcome = out["results"]["mean.csv"]["outcome"]
    assert outcome["M"] == {"0": "ok", "b": "nk-rule; p-ratio; ", "2": "ok"}


def test_passing_crosstab_passes() -> None:
    out = acro_results(
        request(
            {
                "name": "safe.csv",
                "kind": "crosstab",
                "checks": [check("threshold", "pass"), check("file_type", "pass")],
                "metadata": crosstab_metadata([], "pass"),
                "content": b"region,F,M\na,52,47\nb,49,44\nc,30,50\n",
            }
        )
    )
    result = out["results"]["safe.csv"]
    assert result["status"] == "pass"
    assert result["summary"] == "pass"
    assert result["comments"] == []
    assert all(v == "ok" for col in result["outcome"].values() for v in col.values())
    assert result["files"][0]["sdc"]["summary"]["threshold"] == 0


def test_exception_and_description_are_carried() -> None:
    out = acro_results(
        request(
            {
                "name": "by_region.csv",
                "kind": "crosstab",
                "checks": [check("threshold", "fail")],
                "metadata": crosstab_metadata(FAILING_CELLS, "fail"),
                "exception": "published national totals",
                "description": "admissions by region",
            }
        )
    )
    result = out["results"]["by_region.csv"]
    assert result["exception"] == "published national totals"
    assert result["comments"][0] == "admissions by region"
    assert out["sde"]["request"] == "rr-1"
    assert out["sde"]["author"] == "alice"


def test_a_check_that_fails_makes_a_passing_table_fail() -> None:
    out = acro_results(
        request(
            {
                "name": "t.csv",
                "kind": "crosstab",
                "checks": [check("identifiers", "fail", "NHS numbers in column 2")],
                "metadata": crosstab_metadata([], "pass"),
            }
        )
    )
    result = out["results"]["t.csv"]
    assert result["status"] == "fail"
    assert "identifiers: fail; " in result["summary"]


def test_model_is_a_regression_with_its_dof() -> None:
    metadata = {
        "kind": "ols",
        "statistics": ["ols"],
        "status": "fail",
        "shape": [2, 6],
        "cells": [
            {"row": r, "column": c, "row_label": "x", "column_label": "coef", "rules": ["low_dof"]}
            for r in range(2)
            for c in range(6)
        ],
        "details": {"df_resid": 4.0, "nobs": 6.0},
        "mitigation": None,
    }
    out = acro_results(
        request({"name": "model.csv", "kind": "ols", "checks": [], "metadata": metadata})
    )
    result = out["results"]["model.csv"]
    assert result["type"] == "regression"
    assert result["properties"] == {"method": "ols", "dof": 4.0}
    assert result["status"] == "fail"
    assert result["files"][0]["sdc"] == {}
    assert "low_dof: 12 cells" in result["summary"]


def test_files_not_made_by_the_helpers_are_custom_outputs() -> None:
    out = acro_results(
        request(
            {"name": "analysis.py", "kind": "code", "checks": [check("file_type", "pass")]},
            {
                "name": "trend.png",
                "kind": "figure",
                "checks": [check("figure_table", "fail", "names no table in the request")],
                "metadata": {"table": "missing.csv"},
            },
            {"name": "notes.txt", "kind": "text", "checks": []},
        )
    )
    code = out["results"]["analysis.py"]
    assert code["type"] == "custom"
    assert code["status"] == "pass"
    assert code["files"] == [{"name": "analysis.py", "sdc": {}}]
    figure = out["results"]["trend.png"]
    assert figure["status"] == "fail"
    assert figure["properties"] == {"table": "missing.csv"}
    assert figure["comments"] == ["figure_table (fail): names no table in the request"]
    # Nothing checked: a checker must look (ACRO marks custom outputs "review").
    assert out["results"]["notes.txt"]["status"] == "review"


def test_unknown_check_status_fails_closed() -> None:
    out = acro_results(request({"name": "t.txt", "kind": "text", "checks": [check("x", "odd")]}))
    assert out["results"]["t.txt"]["status"] == "fail"


def test_multiindex_csv_labels_join_levels_and_stay_unique() -> None:
    # DataFrame.to_csv() of a table with two index levels and two column levels.
    content = (
        b"sex,,F,F\nstat,,count,count\nregion,age,,\na,young,12,3\na,old,40,41\nb,young,2,30\n"
    )
    cells = [
        {
            "row": 0,
            "column": 1,
            "row_label": "a / young",
            "column_label": "x",
            "rules": ["threshold"],
        }
    ]
    meta = crosstab_metadata(cells, "fail") | {"shape": [3, 2]}
    out = acro_results(
        request(
            {
                "name": "m.csv",
                "kind": "crosstab",
                "checks": [],
                "metadata": meta,
                "content": content,
            }
        )
    )
    outcome = out["results"]["m.csv"]["outcome"]
    # Two columns with the same labels: the second gets its position appended.
    assert list(outcome) == ["F / count", "F / count (1)"]
    assert outcome["F / count (1)"]["a / young"] == "threshold; "
    assert list(outcome["F / count"]) == ["a / young", "a / old", "b / young"]


# What ACRO 0.4.12 wrote (acro.crosstab(df.region, df.sex), no suppression) for a table
# whose region "c" has 3 women and 5 men: the record minus uid, command, timestamp and
# comments, which name ACRO's own session.
ACRO_0_4_12: dict[str, Any] = {
    "status": "fail",
    "type": "table",
    "properties": {"method": "crosstab"},
    "sdc": {
        "summary": {
            "suppressed": False,
            "negative": 0,
            "missing": 0,
            "threshold": 2,
            "p-ratio": 0,
            "nk-rule": 0,
            "all-values-are-same": 0,
        },
        "cells": {
            "negative": [],
            "missing": [],
            "threshold": [[2, 0], [2, 1]],
            "p-ratio": [],
            "nk-rule": [],
            "all-values-are-same": [],
        },
    },
    "outcome": {
        "F": {"a": "ok", "b": "ok", "c": "threshold; "},
        "M": {"a": "ok", "b": "ok", "c": "threshold; "},
    },
    "summary": "fail; threshold: 2 cells may need suppressing; ",
    "exception": "it is fine",
}


def test_same_table_as_acro_0_4_12_writes() -> None:
    out = acro_results(
        request(
            {
                "name": "by_region.csv",
                "kind": "crosstab",
                "checks": [check("threshold", "fail")],
                "metadata": crosstab_metadata(FAILING_CELLS[:2], "fail"),
                "content": CSV,
                "exception": "it is fine",
            }
        )
    )
    result = out["results"]["by_region.csv"]
    ours = {k: result[k] for k in ACRO_0_4_12 if k != "sdc"}
    assert ours == {k: v for k, v in ACRO_0_4_12.items() if k != "sdc"}
    assert result["files"][0]["sdc"] == ACRO_0_4_12["sdc"]
    assert list(result["files"][0]["sdc"]["summary"]) == list(ACRO_0_4_12["sdc"]["summary"])
    assert out["version"] == "0.4.12"
