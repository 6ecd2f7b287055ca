"""Disclosure-aware statistics for the workspace: tables and models that check themselves.

    import sde.workspace.stats as st
    df = con.sql("select * from patients").df()
    out = st.crosstab(df, "region", "sex")                       # a frequency table
    out = st.crosstab(df, "region", "sex", values="bmi", aggfunc="mean")
    out.status          # 'pass' | 'review' | 'fail'
    out.cells           # the rules that fired, cell by cell (tuples), aligned with out.table
    print(out.summary())
    safe = out.suppressed()                                       # or out.rounded()

Each helper computes its table from the row-level DataFrame the researcher has, and
checks every cell with the rules in :mod:`sde.domain.sdc` (counts, contributions for
dominance, residual degrees of freedom, survival thresholds). ``to_json()`` is the
disclosure metadata a release request carries: the rules' parameters and the rules that
fired per cell -- never a count the table does not itself show.

The interface follows pandas and ACRO (``crosstab``, ``pivot_table``, ``ols``/``logit``/
``probit``, ``hist``, ``survival_table``), except that ``data`` is always a DataFrame and
``index``/``columns``/``values`` are its column names.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sde.domain.sdc import (
    DESCRIPTIONS,
    RiskAppetite,
    Rule,
    aggregate_cells,
    combine,
    count_masks,
    evidence_from_codes,
    midpoint6,
    model_cells,
    overall_status,
    round_to_base,
    rule_counts,
    secondary_suppression,
    severity,
    survival_cells,
)
from sde.domain.sdc.rules import AGGREGATES, FloatArray, IntArray, ObjArray
from sde.errors import InputError
from sde.services.home import Home

__all__ = [
    "RiskAppetite",
    "SdcOutput",
    "crosstab",
    "hist",
    "logit",
    "ols",
    "pivot_table",
    "probit",
    "risk_appetite",
    "survival_table",
]

Keys = str | Sequence[str]
ADDITIVE = frozenset({"count", "sum", "mean"})
MARGIN = "All"


@dataclass(frozen=True)
class SdcOutput:
    """A checked output: the table, its per-cell rules and the overall status."""

    kind: str  # crosstab | pivot_table | histogram | survival | ols | logit | probit
    table: pd.DataFrame
    cells: pd.DataFrame  # same index/columns as table: a tuple of rule names per cell
    status: str  # pass | review | fail
    appetite: RiskAppetite
    statistics: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    mitigation: str | None = None
    counts: pd.DataFrame | None = field(default=None, repr=False)  # for mitigations only

    def rules_fired(self) -> dict[str, int]:
        return rule_counts(self.cells.to_numpy(dtype=object))

    def summary(self) -> str:
        lines = [f"{self.kind}: {self.status}"]
        if self.mitigation:
            lines.append(f"mitigation applied: {self.mitigation}")
        for rule, n in self.rules_fired().items():
            desc = DESCRIPTIONS.get(Rule(rule), rule)
            lines.append(f"  {rule} ({severity(rule, self.appetite)}): {n} cell(s) - {desc}")
        if "df_resid" in self.details:
            lines.append(
                f"  residual degrees of freedom {self.details['df_resid']:g} "
                f"(minimum {self.appetite.min_dof})"
            )
        if self.status == "fail":
            lines.append("  suppress (.suppressed()), combine categories, or ask for an exception")
        elif self.status == "review":
            lines.append("  a checker will look at the cells marked review")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Disclosure metadata for a release request: kind, status, parameters, and the
        rules that fired per cell (by position and label). Holds no hidden counts."""
        cells = []
        grid = self.cells.to_numpy(dtype=object)
        for (r, c), rules in np.ndenumerate(grid):
            if rules:
                cells.append(
                    {
                        "row": int(r),
                        "column": int(c),
                        "row_label": _label(self.cells.index[r]),
                        "column_label": _label(self.cells.columns[c]),
                        "rules": list(rules),
                    }
                )
        return {
            "kind": self.kind,
            "statistics": list(self.statistics),
            "status": self.status,
            "shape": list(self.table.shape),
            "parameters": self.appetite.to_json(),
            "rules": self.rules_fired(),
            "cells": cells,
            "details": {k: v for k, v in self.details.items() if _jsonable(v)},
            "mitigation": self.mitigation,
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True)

    # --- mitigations -----------------------------------------------------------------

    def suppressed(self) -> SdcOutput:
        """A copy with failing cells withheld (NaN), plus secondary suppression so that row
        and column totals cannot reveal them (count, sum and mean tables)."""
        if self.kind in ("ols", "logit", "probit"):
            raise InputError(
                "a model cannot be made safe by suppression: simplify it or use more data"
            )
        grid = self.cells.to_numpy(dtype=object)
        failing = np.array(
            [[_worst(rules, self.appetite) == "fail" for rules in row] for row in grid],
            dtype=bool,
        ).reshape(grid.shape)
        values = self.table.to_numpy(dtype=float, na_value=np.nan)
        secondary = np.zeros_like(failing)
        inner = self._inner_slices()
        if self.statistics and set(self.statistics) <= ADDITIVE and inner is not None:
            rs, cs = inner
            cost = (
                self.counts.to_numpy(dtype=float)[rs, cs]
                if self.counts is not None
                else values[rs, cs]
            )
            sec, margins_needed = secondary_suppression(failing[rs, cs], cost)
            secondary[rs, cs] = sec
            if margins_needed.any() and self.details.get("margins"):
                for r, c in np.argwhere(margins_needed):
                    secondary[r, -1] = True
                    secondary[-1, c] = True
                    secondary[-1, -1] = True
        withheld = failing | secondary
        table = self.table.copy().astype(float)
        table.iloc[:, :] = np.where(withheld, np.nan, values)
        new_cells = grid.copy()
        for r, c in np.argwhere(withheld):
            tag = Rule.SUPPRESSED if failing[r, c] else Rule.SECONDARY
            new_cells[r, c] = (*grid[r, c], tag.value)
        status = _status_excluding(new_cells, withheld, self.appetite)
        return replace(
            self,
            table=table,
            cells=pd.DataFrame(new_cells, index=self.cells.index, columns=self.cells.columns),
            status=status,
            mitigation="suppression",
        )

    def rounded(self, base: int | None = None, *, midpoint: bool = False) -> SdcOutput:
        """A copy of a frequency table (counts, histogram) with every count rounded to the
        nearest multiple of ``base`` (default: the appetite's ``round_base``), or with
        ``midpoint=True`` to OpenSAFELY's midpoint 6. Rounding alone does not make a
        small count safe: the copy keeps its rules and is at least ``review``."""
        if not set(self.statistics) <= {"count"} or not self.statistics:
            raise InputError("rounding applies to frequency tables (counts); use suppressed()")
        values = self.table.to_numpy(dtype=float, na_value=np.nan)
        if midpoint:
            new, how = midpoint6(values), "midpoint6"
        else:
            b = base or self.appetite.round_base
            new, how = round_to_base(values, b), f"round_to_base_{b}"
        table = self.table.copy().astype(float)
        table.iloc[:, :] = new
        # As ACRO does: a rounded table whose cells fired any rule goes to a checker.
        fired = overall_status(self.cells.to_numpy(dtype=object), self.appetite)
        status = "pass" if fired == "pass" else "review"
        return replace(self, table=table, status=status, mitigation=how)

    def _inner_slices(self) -> tuple[slice, slice] | None:
        rows, cols = self.table.shape
        if self.kind == "histogram":
            return slice(0, rows), slice(2, 3)  # the counts, whose total is known
        if self.kind not in ("crosstab", "pivot_table"):
            return None
        if self.details.get("margins"):
            return slice(0, rows - 1), slice(0, cols - 1)
        return slice(0, rows), slice(0, cols)


def _label(value: object) -> str:
    if isinstance(value, tuple):
        return " / ".join(str(v) for v in value)
    return str(value)


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _worst(rules: tuple[str, ...], appetite: RiskAppetite) -> str:
    rank = {"pass": 0, "review": 1, "fail": 2}
    worst = "pass"
    for rule in rules:
        s = severity(rule, appetite)
        if rank[s] > rank[worst]:
            worst = s
    return worst


def _status_excluding(cells: ObjArray, withheld: np.ndarray, appetite: RiskAppetite) -> str:
    visible = cells.copy()
    for r, c in np.argwhere(withheld):
        visible[r, c] = ()
    return overall_status(visible, appetite)


def risk_appetite(home: str | Path | Home | None = None) -> RiskAppetite:
    """The environment's risk appetite: ``min_cell_count`` and the ``sdc:`` section of
    the home's ``config.yaml`` (the home from ``SDE_HOME`` when not given)."""
    from sde.workspace import _home

    settings = _home(home).settings
    return RiskAppetite.from_settings(settings.min_cell_count, settings.extra)


def _appetite(appetite: RiskAppetite | None) -> RiskAppetite:
    """The appetite given, else the environment's when a workspace session names its home
    (``SDE_HOME``: the airlock then checks under the same parameters), else the defaults."""
    if appetite is not None:
        return appetite
    if os.environ.get("SDE_HOME"):
        return risk_appetite()
    return RiskAppetite()


def _keys(keys: Keys | None) -> list[str]:
    if keys is None:
        return []
    return [keys] if isinstance(keys, str) else list(keys)


def _require_columns(data: pd.DataFrame, names: Sequence[str]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise InputError("data must be a pandas DataFrame")
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise InputError(f"columns not in the data: {', '.join(missing)}")


def _codes(data: pd.DataFrame, keys: list[str]) -> tuple[IntArray, pd.Index]:
    """Each row's position among the sorted distinct values of ``keys`` (-1 if missing)."""
    if not keys:
        return np.zeros(len(data), dtype=np.int64), pd.Index(["value"])
    if len(keys) == 1:
        codes, uniques = pd.factorize(data[keys[0]], sort=True, use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), pd.Index(uniques, name=keys[0])
    grouped = data.groupby(keys, sort=True, dropna=True, observed=True)
    codes = grouped.ngroup().to_numpy(dtype=np.float64, na_value=-1).astype(np.int64)
    labels = pd.MultiIndex.from_tuples(list(grouped.groups), names=keys)  # type: ignore[arg-type]
    return codes, labels


def _stat_grid(
    statistic: str,
    cell: IntArray,
    shape: tuple[int, int],
    values: FloatArray | None,
    appetite: RiskAppetite,
) -> tuple[FloatArray, ObjArray, IntArray]:
    """The statistic's table, the rules per cell and the contributor counts."""
    if statistic not in AGGREGATES:
        raise InputError(f"aggfunc must be one of {', '.join(AGGREGATES)}")
    if statistic == "count" and values is None:
        ev = evidence_from_codes(cell, shape)
        return ev.counts.astype(float), aggregate_cells("count", ev, appetite), ev.counts
    if values is None:
        raise InputError(f"aggfunc {statistic!r} needs values")
    ev = evidence_from_codes(cell, shape, values, top_n=appetite.nk_n)
    counts = ev.counts
    assert ev.sums is not None
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic == "count":
            table = counts.astype(float)
        elif statistic == "sum":
            table = np.where(counts > 0, ev.sums, np.nan)
        elif statistic == "mean":
            table = np.where(counts > 0, ev.sums / counts, np.nan)
        else:
            keep = (cell >= 0) & ~np.isnan(values)
            series = pd.Series(values[keep]).groupby(cell[keep])
            if statistic == "mode":
                agg = series.agg(lambda s: s.mode().iloc[0])
            else:
                agg = series.agg(statistic)
            flat = np.full(shape[0] * shape[1], np.nan)
            flat[agg.index.to_numpy(dtype=np.int64)] = agg.to_numpy(dtype=float)
            table = flat.reshape(shape)
    return table, aggregate_cells(statistic, ev, appetite), counts


def _table(
    data: pd.DataFrame,
    index: Keys,
    columns: Keys | None,
    values: str | None,
    statistic: str,
    margins: bool,
    appetite: RiskAppetite,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rkeys, ckeys = _keys(index), _keys(columns)
    _require_columns(data, [*rkeys, *ckeys, *([values] if values else [])])
    if not rkeys:
        raise InputError("index must name at least one column")
    rcode, rlabels = _codes(data, rkeys)
    ccode, clabels = _codes(data, ckeys)
    if not ckeys:
        clabels = pd.Index([statistic])
    nr, nc = len(rlabels), len(clabels)
    cell = np.where((rcode >= 0) & (ccode >= 0), rcode * nc + ccode, -1)
    vals = None
    if values is not None:
        column = data[values]
        if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            vals = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        else:
            vals = column.to_numpy(dtype=float, na_value=np.nan)
    table, cells, counts = _stat_grid(statistic, cell, (nr, nc), vals, appetite)
    if margins:
        row_m = _stat_grid(statistic, np.where(cell >= 0, rcode, -1), (nr, 1), vals, appetite)
        col_m = _stat_grid(statistic, np.where(cell >= 0, ccode, -1), (1, nc), vals, appetite)
        all_m = _stat_grid(statistic, np.where(cell >= 0, 0, -1), (1, 1), vals, appetite)
        table = np.block([[table, row_m[0]], [col_m[0], all_m[0]]])
        cells = _block_obj([[cells, row_m[1]], [col_m[1], all_m[1]]])
        counts = np.block([[counts, row_m[2]], [col_m[2], all_m[2]]])
        rlabels = _append_label(rlabels)
        clabels = _append_label(clabels)
    frame = pd.DataFrame(table, index=rlabels, columns=clabels)
    cell_frame = pd.DataFrame(cells, index=rlabels, columns=clabels)
    count_frame = pd.DataFrame(counts, index=rlabels, columns=clabels)
    if statistic == "count":
        frame = frame.astype("int64") if not np.isnan(table).any() else frame
    return frame, cell_frame, count_frame


def _block_obj(blocks: list[list[ObjArray]]) -> ObjArray:
    rows = [np.concatenate(row, axis=1) for row in blocks]
    out: ObjArray = np.concatenate(rows, axis=0)
    return out


def _append_label(labels: pd.Index) -> pd.Index:
    if isinstance(labels, pd.MultiIndex):
        extra = tuple([MARGIN] + [""] * (labels.nlevels - 1))
        return labels.append(pd.MultiIndex.from_tuples([extra], names=labels.names))
    return pd.Index([*labels.tolist(), MARGIN], name=labels.name)


def _output(
    kind: str,
    parts: list[tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame]],
    appetite: RiskAppetite,
    margins: bool,
    many: bool,
) -> SdcOutput:
    if many:
        keys = [p[0] for p in parts]
        table = pd.concat([p[1] for p in parts], axis=1, keys=keys)
        cells = pd.concat([p[2] for p in parts], axis=1, keys=keys)
        counts = pd.concat([p[3] for p in parts], axis=1, keys=keys)
    else:
        _, table, cells, counts = parts[0]
    status = overall_status(cells.to_numpy(dtype=object), appetite)
    return SdcOutput(
        kind=kind,
        table=table,
        cells=cells,
        status=status,
        appetite=appetite,
        statistics=tuple(p[0] for p in parts),
        details={"margins": margins} if not many else {"margins": False},
        counts=counts,
    )


def crosstab(
    data: pd.DataFrame,
    index: Keys,
    columns: Keys,
    values: str | None = None,
    aggfunc: str | None = None,
    margins: bool = False,
    *,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """A cross tabulation of ``index`` by ``columns`` (column names of ``data``): counts
    of rows, or ``aggfunc`` (count, sum, mean, median, min, max, std, mode) of
    ``values``. Every combination of the labels is a cell, empty ones included."""
    ra = _appetite(appetite)
    if (values is None) != (aggfunc is None):
        raise InputError("give both values and aggfunc, or neither")
    statistic = aggfunc or "count"
    t, c, n = _table(data, index, columns, values, statistic, margins, ra)
    return _output("crosstab", [(statistic, t, c, n)], ra, margins, many=False)


def pivot_table(
    data: pd.DataFrame,
    index: Keys,
    columns: Keys | None = None,
    values: str | None = None,
    aggfunc: str | Sequence[str] = "mean",
    margins: bool = False,
    *,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """Like ``pandas.pivot_table`` for one ``values`` column: one block of columns per
    ``aggfunc`` when several are given."""
    ra = _appetite(appetite)
    funcs = [aggfunc] if isinstance(aggfunc, str) else list(aggfunc)
    if not funcs:
        raise InputError("aggfunc must name at least one statistic")
    if values is None and any(f != "count" for f in funcs):
        raise InputError("pivot_table needs values for statistics other than count")
    parts = []
    for f in funcs:
        t, c, n = _table(data, index, columns, values, f, margins, ra)
        parts.append((f, t, c, n))
    return _output("pivot_table", parts, ra, margins, many=len(funcs) > 1)


def hist(
    data: pd.DataFrame,
    column: str,
    bins: int | Sequence[float] = 10,
    range: tuple[float, float] | None = None,
    *,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """A histogram as a table (``bin_start``, ``bin_end``, ``count``), each bin checked as
    a count. When the edges come from the data (``bins`` a number, no ``range``), the
    outer bins are marked for review: their edges are the data's minimum and maximum."""
    ra = _appetite(appetite)
    _require_columns(data, [column])
    values = pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise InputError(f"column {column} has no numeric values")
    counts, edges = np.histogram(
        values, bins=bins if isinstance(bins, int) else np.asarray(bins), range=range
    )
    counts = counts.astype(np.int64)
    table = pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "count": counts})
    shape = (len(counts), 3)
    fired = []
    for rule, mask in count_masks(counts, ra):
        in_count_column = np.zeros(shape, dtype=bool)
        in_count_column[:, 2] = mask
        fired.append((rule, in_count_column))
    if isinstance(bins, int) and range is None:
        outer = np.zeros(shape, dtype=bool)
        outer[0, 0] = True
        outer[-1, 1] = True
        fired.append((Rule.BIN_EDGES, outer))
    cells = pd.DataFrame(combine(shape, fired), index=table.index, columns=table.columns)
    count_frame = pd.DataFrame(
        np.repeat(counts[:, None], 3, axis=1), index=table.index, columns=table.columns
    )
    return SdcOutput(
        kind="histogram",
        table=table,
        cells=cells,
        status=overall_status(cells.to_numpy(dtype=object), ra),
        appetite=ra,
        statistics=("count",),
        details={"bins": len(counts)},
        counts=count_frame,
    )


def survival_table(
    data: pd.DataFrame,
    time: str,
    event: str,
    *,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """A Kaplan-Meier table: one row per distinct time with ``at_risk``, ``events``,
    ``censored`` and ``survival`` (the product-limit estimate). ``event`` is 1/True for
    an event, 0/False for censoring. Each row is checked: at least
    ``survival_min_at_risk`` at risk, and each step's events and censorings 0 or at
    least ``survival_min_events``."""
    ra = _appetite(appetite)
    _require_columns(data, [time, event])
    t = pd.to_numeric(data[time], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    e = pd.to_numeric(data[event], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = ~np.isnan(t) & ~np.isnan(e)
    t, ev = t[ok], e[ok] != 0
    if t.size == 0:
        raise InputError("no rows with both a time and an event indicator")
    times, inverse = np.unique(t, return_inverse=True)
    events = np.bincount(inverse, weights=ev.astype(float), minlength=len(times)).astype(np.int64)
    total = np.bincount(inverse, minlength=len(times)).astype(np.int64)
    censored = total - events
    at_risk = (total[::-1].cumsum()[::-1]).astype(np.int64)
    survival = np.cumprod(1.0 - events / at_risk)
    table = pd.DataFrame(
        {
            "time": times,
            "at_risk": at_risk,
            "events": events,
            "censored": censored,
            "survival": survival,
        }
    )
    row_cells = survival_cells(at_risk, events, censored, ra)
    grid = np.empty(table.shape, dtype=object)
    for j in np.arange(table.shape[1]):
        grid[:, j] = row_cells
    cells = pd.DataFrame(grid, index=table.index, columns=table.columns)
    return SdcOutput(
        kind="survival",
        table=table,
        cells=cells,
        status=overall_status(grid, ra),
        appetite=ra,
        statistics=("survival",),
        details={"time_points": len(times)},
    )


def _model(
    kind: str,
    formula: str | None,
    data: pd.DataFrame | None,
    endog: Any,
    exog: Any,
    appetite: RiskAppetite | None,
) -> SdcOutput:
    import statsmodels.api as sm  # type: ignore[import-untyped]
    import statsmodels.formula.api as smf  # type: ignore[import-untyped]

    ra = _appetite(appetite)
    if formula is not None:
        if data is None or endog is not None or exog is not None:
            raise InputError("give a formula with data, or endog and exog, not both")
        model = {"ols": smf.ols, "logit": smf.logit, "probit": smf.probit}[kind](formula, data)
    else:
        if endog is None or exog is None:
            raise InputError("give a formula with data, or endog and exog")
        cls = {"ols": sm.OLS, "logit": sm.Logit, "probit": sm.Probit}[kind]
        model = cls(endog, exog, missing="drop")
    result = model.fit() if kind == "ols" else model.fit(disp=0)
    ci = result.conf_int()
    stat_name = "t" if kind == "ols" else "z"
    table = pd.DataFrame(
        {
            "coef": result.params,
            "std_err": result.bse,
            stat_name: result.tvalues,
            "p_value": result.pvalues,
            "ci_low": ci.iloc[:, 0],
            "ci_high": ci.iloc[:, 1],
        }
    )
    df_resid = float(result.df_resid)
    grid = model_cells(table.shape, df_resid, ra)
    cells = pd.DataFrame(grid, index=table.index, columns=table.columns)
    return SdcOutput(
        kind=kind,
        table=table,
        cells=cells,
        status=overall_status(grid, ra),
        appetite=ra,
        statistics=(kind,),
        details={"df_resid": df_resid, "nobs": float(result.nobs)},
    )


def ols(
    formula: str | None = None,
    data: pd.DataFrame | None = None,
    *,
    endog: Any = None,
    exog: Any = None,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """Ordinary least squares (statsmodels), by formula (``ols("y ~ x + C(g)", df)``,
    like ACRO's ``olsr``) or arrays (``ols(endog=y, exog=X)``, like ACRO's ``ols``; add a
    constant yourself). Fails when residual degrees of freedom < ``min_dof``."""
    return _model("ols", formula, data, endog, exog, appetite)


def logit(
    formula: str | None = None,
    data: pd.DataFrame | None = None,
    *,
    endog: Any = None,
    exog: Any = None,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """Logistic regression; arguments as :func:`ols`."""
    return _model("logit", formula, data, endog, exog, appetite)


def probit(
    formula: str | None = None,
    data: pd.DataFrame | None = None,
    *,
    endog: Any = None,
    exog: Any = None,
    appetite: RiskAppetite | None = None,
) -> SdcOutput:
    """Probit regression; arguments as :func:`ols`."""
    return _model("probit", formula, data, endog, exog, appetite)
