"""sde.workspace.stats on small DataFrames: tables, statuses and per-cell reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sde.workspace.stats as st
from sde.domain.sdc import RiskAppetite, recoverable
from sde.errors import InputError


@pytest.fixture
def people() -> pd.DataFrame:
    """Regions N, S with plenty of people of both sexes; region X has one woman."""
    rows = []
    for region, sex, n in [("N", "F", 30), ("N", "M", 25), ("S", "F", 12), ("S", "M", 40)]:
        for i in range(n):
            rows.append({"region": region, "sex": sex, "income": 100.0 + i, "age": 20 + i})
    rows.append({"region": "X", "sex": "F", "income": 5000.0, "age": 50})
    return pd.DataFrame(rows)


def test_frequency_table_status_and_reasons(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex")
    assert out.table.loc["N", "F"] == 30
    assert out.table.loc["X", "F"] == 1
    assert out.status == "fail"
    assert out.cells.loc["X", "F"] == ("threshold",)
    assert out.cells.loc["X", "M"] == ("zero",)
    assert out.cells.loc["N", "F"] == ()
    assert list(out.cells.index) == list(out.table.index)
    assert list(out.cells.columns) == list(out.table.columns)
    assert "threshold (fail): 1 cell" in out.summary()


def test_a_safe_table_passes(people: pd.DataFrame) -> None:
    out = st.crosstab(people[people.region != "X"], "region", "sex")
    assert out.status == "pass"
    assert out.rules_fired() == {}


def test_mean_table_checks_dominance_with_margins(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex", values="income", aggfunc="mean", margins=True)
    assert out.table.loc["All", "All"] == pytest.approx(people.income.mean())
    assert out.cells.loc["X", "F"] == ("threshold", "nk_dominance", "p_percent")
    assert out.cells.loc["X", "M"] == ("zero",)
    assert out.cells.loc["X", "All"] == ("threshold", "nk_dominance", "p_percent")
    assert out.cells.loc["N", "F"] == ()
    assert out.status == "fail"


def test_dominance_in_a_big_cell(people: pd.DataFrame) -> None:
    df = people.copy()
    df.loc[(df.region == "S") & (df.sex == "M"), "income"] = 1.0
    df.loc[df.index[(df.region == "S") & (df.sex == "M")][0], "income"] = 1_000_000.0
    out = st.crosstab(df, "region", "sex", values="income", aggfunc="sum")
    assert out.cells.loc["S", "M"] == ("nk_dominance", "p_percent")


def test_negative_values_are_for_review() -> None:
    df = pd.DataFrame({"g": ["a"] * 12, "v": [-1.0] + [5.0] * 11})
    out = st.pivot_table(df, "g", values="v", aggfunc="sum")
    assert out.cells.iloc[0, 0] == ("negative",)
    assert out.status == "review"


def test_pivot_table_with_several_statistics(people: pd.DataFrame) -> None:
    out = st.pivot_table(people, "region", values="age", aggfunc=["mean", "max", "median"])
    assert out.table.loc["N", ("max", "max")] == 49
    assert out.table.loc["S", ("median", "median")] == pytest.approx(
        people[people.region == "S"].age.median()
    )
    assert out.cells.loc["N", ("max", "max")] == ("min_max",)
    assert out.cells.loc["X", ("max", "max")] == ("threshold",)
    assert out.cells.loc["N", ("median", "median")] == ()
    assert out.status == "fail"


def test_suppressed_copy_protects_the_margins(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex").suppressed()
    assert out.mitigation == "suppression"
    assert np.isnan(out.table.loc["X", "F"])
    assert "suppressed" in out.cells.loc["X", "F"]
    withheld = out.table.isna().to_numpy()
    assert not recoverable(withheld).any()
    assert out.status == "pass"


def test_rounded_copies(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex")
    five = out.rounded()
    assert five.table.loc["N", "M"] == 25
    assert five.table.loc["S", "F"] == 10
    assert five.mitigation == "round_to_base_5"
    assert five.status == "review"
    six = out.rounded(midpoint=True)
    assert six.table.loc["X", "F"] == 3
    assert six.table.loc["X", "M"] == 0
    assert six.mitigation == "midpoint6"
    with pytest.raises(InputError, match="frequency tables"):
        st.crosstab(people, "region", "sex", values="age", aggfunc="mean").rounded()


def test_appetite_changes_the_verdict(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex", appetite=RiskAppetite(min_cell_count=13))
    assert out.cells.loc["S", "F"] == ("threshold",)


def test_to_json_carries_rules_and_parameters_but_no_hidden_counts(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex", values="income", aggfunc="mean")
    meta = out.to_json()
    assert meta["kind"] == "crosstab"
    assert meta["status"] == "fail"
    assert meta["parameters"]["nk_k"] == 0.9
    assert {"row_label": "X", "column_label": "F"}.items() <= meta["cells"][0].items()
    text = json.dumps(meta)
    assert "5000" not in text  # the dominant value
    assert '"counts"' not in text


def test_ols_residual_degrees_of_freedom(people: pd.DataFrame) -> None:
    out = st.ols("income ~ age + C(sex)", people)
    assert out.status == "pass"
    assert out.details["df_resid"] == len(people) - 3
    boundary = st.ols("income ~ age", people.iloc[:12])
    assert boundary.details["df_resid"] == 10
    assert boundary.status == "pass"
    small = st.ols("income ~ age", people.iloc[:11])
    assert small.details["df_resid"] == 9
    assert small.status == "fail"
    assert small.cells.iloc[0, 0] == ("low_dof",)
    with pytest.raises(InputError, match="suppression"):
        small.suppressed()


def test_ols_from_arrays_matches_the_formula(people: pd.DataFrame) -> None:
    exog = pd.DataFrame({"const": 1.0, "age": people.age.astype(float)})
    by_arrays = st.ols(endog=people.income, exog=exog)
    by_formula = st.ols("income ~ age", people)
    assert by_arrays.table["coef"].to_numpy() == pytest.approx(by_formula.table["coef"].to_numpy())


def test_logit_and_probit(people: pd.DataFrame) -> None:
    df = people.assign(
        y=(np.random.default_rng(1).random(len(people)) < 0.4).astype(int), age=people.age
    )
    for fit in (st.logit, st.probit):
        out = fit("y ~ age", df)
        assert out.kind in ("logit", "probit")
        assert out.status == "pass"
        assert out.details["df_resid"] == len(df) - 2


def test_histogram_bins_are_counts_and_data_edges_are_reviewed() -> None:
    df = pd.DataFrame({"x": [*range(100), 1000]})
    out = st.hist(df, "x", bins=5)
    assert out.table["count"].sum() == 101
    assert out.cells.loc[out.table.index[-1], "count"] == ("threshold",)
    assert "bin_edges" in out.cells.iloc[0, 0]
    assert out.status == "fail"
    safe = out.suppressed()
    withheld = safe.table["count"].isna()
    assert withheld.sum() >= 2  # the total of the bins is known: one alone is recoverable
    assert not safe.table["bin_start"].isna().any()
    fixed = st.hist(df[df.x < 100], "x", bins=[0, 50, 100])
    assert fixed.status == "pass"


def test_survival_table(people: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {"t": np.repeat([1, 2, 3, 4], [40, 30, 20, 12]), "e": rng.integers(0, 2, 102)}
    )
    df.loc[:39, "e"] = 1  # 40 events at t=1
    out = st.survival_table(df, "t", "e")
    first = out.table.iloc[0]
    assert (first.at_risk, first.events, first.censored) == (102, 40, 0)
    assert first.survival == pytest.approx(1 - 40 / 102)
    assert out.cells.iloc[0, 0] == ()
    last = out.table.iloc[-1]
    assert last.at_risk == 12
    assert out.status == "fail"
    assert "survival_events" in out.cells.iloc[-1, 0]


def test_missing_columns_and_bad_arguments(people: pd.DataFrame) -> None:
    with pytest.raises(InputError, match="nhs_number"):
        st.crosstab(people, "nhs_number", "sex")
    with pytest.raises(InputError, match="values and aggfunc"):
        st.crosstab(people, "region", "sex", values="age")
    with pytest.raises(InputError, match="aggfunc must be one of"):
        st.crosstab(people, "region", "sex", values="age", aggfunc="variance")


def test_several_index_columns(people: pd.DataFrame) -> None:
    df = people.assign(band=np.where(people.age < 35, "young", "old"))
    out = st.crosstab(df, ["region", "band"], "sex")
    assert out.table.index.nlevels == 2
    assert out.table.loc[("N", "young"), "F"] == 15
    assert out.cells.loc[("X", "old"), "F"] == ("threshold",)


def test_risk_appetite_comes_from_the_homes_config(tmp_path: Path) -> None:
    from sde.services.home import Settings, init_home

    home = init_home(tmp_path / "home", Settings(min_cell_count=12, extra={"sdc": {"nk_k": 0.85}}))
    appetite = st.risk_appetite(home.root)
    assert (appetite.min_cell_count, appetite.nk_k, appetite.p_percent) == (12, 0.85, 0.1)


@pytest.mark.parametrize("aggfunc", ["sum", "mean", "median", "min", "max", "std", "count"])
def test_tables_match_pandas(people: pd.DataFrame, aggfunc: str) -> None:
    ours = st.crosstab(people, "region", "sex", values="income", aggfunc=aggfunc).table
    theirs = pd.crosstab(
        people.region, people.sex, values=people.income, aggfunc=aggfunc, dropna=False
    )
    if aggfunc == "count":
        theirs = theirs.fillna(0)  # an empty cell counts 0 here, as in a frequency table
    assert list(ours.index) == list(theirs.index)
    assert list(ours.columns) == list(theirs.columns)
    np.testing.assert_allclose(
        ours.to_numpy(dtype=float), theirs.to_numpy(dtype=float), equal_nan=True
    )


def test_suppressing_a_table_with_margins(people: pd.DataFrame) -> None:
    out = st.crosstab(people, "region", "sex", margins=True)
    assert out.table.loc["All", "All"] == len(people)
    assert out.cells.loc["X", "All"] == ("threshold",)
    safe = out.suppressed()
    inner = safe.table.drop(index="All", columns="All").isna().to_numpy()
    assert inner[list(safe.table.index).index("X"), 0]
    assert not recoverable(inner).any()
    assert np.isnan(safe.table.loc["X", "All"])  # the row total of 1 fails itself
