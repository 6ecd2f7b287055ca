"""Differencing: a new count table against the project's earlier tables (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from sde.domain.disclosure import CheckStatus
from sde.domain.sdc.differencing import (
    CountTable,
    check_differencing,
    count_table,
    flagged_cells,
)

CROSSTAB = b"region,F,M\nE,50,65\nN,47,43\nS,44,51\n"
CROSSTAB_META: dict[str, Any] = {"kind": "crosstab", "statistics": ["count"], "shape": [3, 2]}


def table(
    rows: tuple[str, ...],
    cols: tuple[str, ...],
    counts: tuple[tuple[float | None, ...], ...],
    name: str = "t.csv",
    source: str = "r1",
) -> CountTable:
    return CountTable(name, source, rows, cols, counts)


# --- count_table ---------------------------------------------------------------------


def test_crosstab_counts() -> None:
    t = count_table(
        "c.csv", "r1", CROSSTAB, kind="crosstab", metadata=CROSSTAB_META, count_columns=()
    )
    assert t is not None
    assert t.row_labels == ("E", "N", "S")
    assert t.column_labels == ("F", "M")
    assert t.counts == ((50, 65), (47, 43), (44, 51))
    assert t.total() == 300


def test_crosstab_with_two_index_levels_and_margins() -> None:
    content = b"region,sex,F,M,All\nE,F,50,0,50\nE,M,0,65,65\nAll,,50,65,115\n"
    meta = {"kind": "crosstab", "statistics": ["count"], "shape": [3, 3]}
    t = count_table("c.csv", "r1", content, kind="crosstab", metadata=meta, count_columns=())
    assert t is not None
    assert t.row_labels == ("E / F", "E / M", "All")
    assert t.column_labels == ("F", "M", "All")
    assert t.total() == 115  # margins left out


def test_pivot_with_several_statistics_keeps_the_count_block() -> None:
    content = (
        b",count,count,mean,mean\nsex,F,M,F,M\nregion,,,,\nE,50,65,24.3,25.1\nN,47,43,25.5,24.2\n"
    )
    meta = {"kind": "pivot_table", "statistics": ["count", "mean"], "shape": [2, 4]}
    t = count_table("p.csv", "r1", content, kind="pivot_table", metadata=meta, count_columns=())
    assert t is not None
    assert t.row_labels == ("E", "N")
    assert t.column_labels == ("F", "M")
    assert t.counts == ((50, 65), (47, 43))


def test_histogram_rows_are_bins() -> None:
    content = b",bin_start,bin_end,count\n0,0,30,99\n1,30,60,97\n"
    meta = {"kind": "histogram", "statistics": ["count"], "shape": [2, 3]}
    t = count_table("h.csv", "r1", content, kind="hist", metadata=meta, count_columns=())
    assert t is not None
    assert t.row_labels == ("[0, 30)", "[30, 60)")
    assert t.counts == ((99,), (97,))


def test_plain_table_and_no_counts() -> None:
    content = b"region,sex,n\nE,F,50\nE,M,\nN,F,47\n"
    t = count_table("p.csv", "r2", content, kind="table", metadata=None, count_columns=())
    assert t is not None
    assert t.row_labels == ("E / F", "E / M", "N / F")
    assert t.column_labels == ("n",)
    assert t.counts == ((50,), (None,), (47,))
    declared = count_table(
        "p.csv",
        "r2",
        b"g,people_seen\na,3\n",
        kind="table",
        metadata=None,
        count_columns=("people_seen",),
    )
    assert declared is not None
    assert declared.column_labels == ("people_seen",)
    assert (
        count_table("p.csv", "r", b"g,mean\na,3\n", kind="table", metadata=None, count_columns=())
        is None
    )
    means = {"kind": "crosstab", "statistics": ["mean"], "shape": [3, 2]}
    assert (
        count_table("m.csv", "r", CROSSTAB, kind="crosstab", metadata=means, count_columns=())
        is None
    )
    assert count_table("x.csv", "r", b"\xff", kind="table", metadata=None, count_columns=()) is None


def test_count_table_refuses_ragged_counts() -> None:
    with pytest.raises(ValueError, match="one row per row label"):
        table(("a",), ("n",), ((1,), (2,)))


# --- check_differencing --------------------------------------------------------------


def test_a_small_difference_in_a_shared_cell_fails() -> None:
    earlier = table(("E", "N"), ("n",), ((50,), (47,)), name="all_ages.csv", source="r1")
    new = table(("E", "N"), ("n",), ((50,), (45,)), name="adults.csv", source="r2")
    result = check_differencing(new, [earlier], threshold=10)
    assert result.name == "differencing"
    assert result.status == CheckStatus.FAIL
    findings = result.details["findings"]
    assert findings == [
        {
            "table": "all_ages.csv",
            "source": "r1",
            "flagged_cells": 1,
            "positions": [{"row": "N", "column": "n"}],
            "grid": [],  # a table built by hand has no CSV positions
            "totals": True,
        }
    ]
    assert flagged_cells(new, [earlier], 10) == {(1, 0)}
    assert "all_ages.csv (r1)" in result.message


def test_differences_of_zero_or_at_least_the_threshold_pass() -> None:
    earlier = table(("E", "N"), ("n",), ((50,), (47,)))
    new = table(("E", "N"), ("n",), ((50,), (37,)))
    result = check_differencing(new, [earlier], threshold=10)
    assert result.status == CheckStatus.PASS
    assert result.details["compared"] == 1
    assert flagged_cells(new, [earlier], 10) == set()


def test_withheld_cells_and_unrelated_tables_are_not_compared() -> None:
    earlier = table(("E", "N"), ("n",), ((50,), (None,)))
    new = table(("E", "N"), ("n",), ((50,), (45,)))
    assert check_differencing(new, [earlier], 10).status == CheckStatus.PASS
    other = table(("0-17", "18+"), ("deaths",), ((48,), (44,)))
    result = check_differencing(new, [other], 10)
    assert result.status == CheckStatus.PASS
    assert result.details["compared"] == 0


def test_difference_of_totals_flags_the_grand_total() -> None:
    by_region = table(("E", "N", "All"), ("n", "All"), ((50, 50), (47, 47), (97, 97)))
    by_age = table(("0-17", "18+", "All"), ("n", "All"), ((20, 20), (80, 80), (100, 100)))
    result = check_differencing(by_age, [by_region], threshold=10)
    assert result.status == CheckStatus.FAIL
    assert "total differs" in result.message
    # the All row and column are shared labels: their cells differ by 3 as well
    assert flagged_cells(by_age, [by_region], 10) == {(2, 0), (2, 1)}
    no_margin = table(("0-17", "18+"), ("n",), ((20,), (80,)))
    assert check_differencing(no_margin, [by_region], 10).status == CheckStatus.FAIL
    assert flagged_cells(no_margin, [by_region], 10) == set()


def test_repeated_labels_are_ambiguous_and_skipped() -> None:
    earlier = table(("E", "E"), ("n",), ((50,), (60,)))
    new = table(("E",), ("n",), ((55,),))
    assert flagged_cells(new, [earlier], 10) == set()


def test_several_earlier_tables_and_no_count_in_the_message() -> None:
    new = table(("E", "N"), ("F", "M"), ((50, 65), (47, 43)), name="new.csv")
    a = table(("E", "N"), ("F", "M"), ((52, 65), (47, 43)), name="a.csv", source="r1")
    b = table(("N",), ("M",), ((40,),), name="b.csv", source="r7")
    result = check_differencing(new, [a, b], threshold=10)
    assert result.status == CheckStatus.FAIL
    findings = result.details["findings"]
    assert isinstance(findings, list)
    assert [f["table"] for f in findings] == ["a.csv", "b.csv"]
    assert flagged_cells(new, [a, b], 10) == {(0, 0), (1, 1)}
    blob = result.message + repr(result.details)
    for count in ("50", "65", "47", "43", "52", "40"):
        assert count not in blob


def test_count_tables_from_real_stats_outputs() -> None:
    import numpy as np
    import pandas as pd

    import sde.workspace.stats as st

    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "region": rng.choice(["N", "S", "E"], 300),
            "sex": rng.choice(["F", "M"], 300),
            "age": rng.integers(0, 90, 300),
            "bmi": rng.normal(25, 3, 300),
        }
    )
    outputs = {
        "crosstab": st.crosstab(df, ["region", "sex"], "sex", margins=True),
        "pivot_table": st.pivot_table(df, "region", "sex", "bmi", ["count", "mean"]),
        "hist": st.hist(df, "age", bins=[0, 30, 60, 90]),
    }
    for kind, out in outputs.items():
        t = count_table(
            f"{kind}.csv",
            "r1",
            out.table.to_csv().encode(),
            kind=kind,
            metadata=out.to_json(),
            count_columns=(),
        )
        assert t is not None, kind
        counts = out.table if kind != "pivot_table" else out.table["count"]
        if kind == "hist":
            counts = out.table[["count"]]
        assert np.array_equal(np.array(t.counts, dtype=float), counts.to_numpy(dtype=float))
        assert len(t.row_labels) == len(set(t.row_labels)), kind
    crosstab = count_table(
        "c.csv",
        "r1",
        outputs["crosstab"].table.to_csv().encode(),
        kind="crosstab",
        metadata=outputs["crosstab"].to_json(),
        count_columns=(),
    )
    assert crosstab is not None
    assert crosstab.row_labels[0] == "E / F"
    assert crosstab.column_labels == ("F", "M", "All")
    assert crosstab.total() == 300


def test_flagged_cells_carry_their_csv_position() -> None:
    earlier = count_table(
        "a.csv", "r1", b"region,n\nE,50\nN,47\n", kind="table", metadata=None, count_columns=()
    )
    new = count_table(
        "b.csv", "r2", b"region,n\nE,50\nN,45\n", kind="table", metadata=None, count_columns=()
    )
    assert earlier is not None
    assert new is not None
    result = check_differencing(new, [earlier], threshold=10)
    assert result.details["findings"][0]["grid"] == [[2, 1]]  # type: ignore[index]
