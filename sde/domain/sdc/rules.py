"""The disclosure-control rules, cell by cell.

Every rule is a name and a vectorised test over a table's cells, computed from the
row-level data behind the table (:class:`Evidence`): how many contributors each cell
has, their total, their largest contributions and whether any is negative. A cell's
result is the tuple of the names of the rules that fired for it; the table's status is
the worst severity among them. Nothing here reads a file or a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from sde.domain.sdc.appetite import RiskAppetite

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]


class Rule(StrEnum):
    THRESHOLD = "threshold"  # fewer contributors than min_cell_count
    ZERO = "zero"  # a zero count (class disclosure: nobody in the group has it)
    NK_DOMINANCE = "nk_dominance"  # the n largest contributions exceed k of the total
    P_PERCENT = "p_percent"  # the second largest could estimate the largest within p%
    NEGATIVE = "negative"  # a negative contribution: dominance is undefined
    MIN_MAX = "min_max"  # a minimum or maximum is one person's value
    LOW_DOF = "low_dof"  # a model with too few residual degrees of freedom
    AT_RISK = "survival_at_risk"  # fewer people at risk than the survival threshold
    EVENTS = "survival_events"  # a step of fewer events/censorings than the threshold
    BIN_EDGES = "bin_edges"  # outer histogram edges taken from the data (min/max)
    SUPPRESSED = "suppressed"  # mitigation: the cell was withheld (primary)
    SECONDARY = "secondary_suppression"  # mitigation: withheld to protect another cell


MITIGATIONS = frozenset({Rule.SUPPRESSED, Rule.SECONDARY})
RANK = {"pass": 0, "review": 1, "fail": 2}

DESCRIPTIONS: dict[Rule, str] = {
    Rule.THRESHOLD: "fewer contributors than the minimum cell count",
    Rule.ZERO: "a zero count: everyone in this group lacks the attribute (class disclosure)",
    Rule.NK_DOMINANCE: "the largest contributions dominate the cell total (NK rule)",
    Rule.P_PERCENT: "a contributor could estimate the largest value too closely (p% rule)",
    Rule.NEGATIVE: "negative contributions: dominance cannot be assessed",
    Rule.MIN_MAX: "a minimum or maximum is a single person's value",
    Rule.LOW_DOF: "too few residual degrees of freedom in the model",
    Rule.AT_RISK: "fewer people at risk than the survival threshold",
    Rule.EVENTS: "too few events or censorings at this step of the survival curve",
    Rule.BIN_EDGES: "an outer bin edge is the data's minimum or maximum",
    Rule.SUPPRESSED: "withheld (failed a rule)",
    Rule.SECONDARY: "withheld so that totals cannot reveal a suppressed cell",
}


def severity(rule: str, appetite: RiskAppetite) -> str:
    """``pass``, ``review`` or ``fail`` for one rule under a risk appetite."""
    if rule == Rule.ZERO:
        return appetite.zeros
    if rule == Rule.NEGATIVE:
        return appetite.negatives
    if rule == Rule.MIN_MAX:
        return appetite.min_max
    if rule in (Rule.BIN_EDGES,):
        return "review"
    if rule in MITIGATIONS:
        return "pass"
    return "fail"


@dataclass(frozen=True)
class Evidence:
    """What the rules need about each cell, from the row-level data. Arrays share a shape.

    ``top`` has one more axis: the cell's largest contributions, largest first, padded
    with zeros (``top[..., 0]`` is the largest)."""

    counts: IntArray
    sums: FloatArray | None = None
    top: FloatArray | None = None
    negatives: BoolArray | None = None


def empty_cells(shape: tuple[int, ...]) -> ObjArray:
    cells: ObjArray = np.empty(shape, dtype=object)
    cells.fill(())
    return cells


def combine(shape: tuple[int, ...], fired: Iterable[tuple[str, BoolArray]]) -> ObjArray:
    """Per-cell tuples of the rule names whose masks are true there (in the given order)."""
    cells = empty_cells(shape)
    for name, mask in fired:
        for index in zip(*np.nonzero(mask), strict=True):
            cells[index] = (*cells[index], str(name))
    return cells


def count_masks(counts: IntArray, appetite: RiskAppetite) -> list[tuple[str, BoolArray]]:
    """Frequencies (counts, histogram bins, mode): the threshold, and zeros when the
    appetite says zeros matter. The threshold covers 1..min_cell_count-1."""
    fired: list[tuple[str, BoolArray]] = [
        (Rule.THRESHOLD, (counts > 0) & (counts < appetite.min_cell_count))
    ]
    if appetite.zeros != "pass":
        fired.append((Rule.ZERO, counts == 0))
    return fired


def dominance_masks(evidence: Evidence, appetite: RiskAppetite) -> list[tuple[str, BoolArray]]:
    """NK and p% over each cell's largest contributions; a cell with a negative
    contribution gets ``negative`` instead (dominance is undefined there)."""
    if evidence.sums is None or evidence.top is None or evidence.negatives is None:
        raise ValueError("dominance rules need the cells' sums and largest contributions")
    total = evidence.sums
    top = evidence.top
    neg = evidence.negatives
    positive = (total > 0) & ~neg
    n = min(appetite.nk_n, top.shape[-1])
    top_n = top[..., :n].sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nk = positive & (top_n > appetite.nk_k * total)
    x1 = top[..., 0]
    x2 = top[..., 1] if top.shape[-1] > 1 else np.zeros_like(x1)
    # p% rule: the rest of the cell must be at least p x the largest contribution,
    # otherwise the second largest contributor can estimate the largest within p%.
    rest = total - x1 - x2
    p = positive & (x1 > 0) & (rest < appetite.p_percent * x1)
    return [(Rule.NK_DOMINANCE, nk), (Rule.P_PERCENT, p), (Rule.NEGATIVE, neg)]


AGGREGATES = ("count", "sum", "mean", "median", "std", "min", "max", "mode")


def aggregate_cells(statistic: str, evidence: Evidence, appetite: RiskAppetite) -> ObjArray:
    """The rules for one statistic, per cell (SDC handbook / SACRO guide):

    - every statistic: threshold, and zeros (an empty cell) as the appetite says;
    - sum, mean: NK dominance, p%, negatives;
    - median, std, mode: nothing more (the threshold is what protects them);
    - min, max: ``min_max`` on every cell at or above the threshold (the value is one
      person's, so a checker looks; ``fail`` if the appetite says so).
    """
    counts = evidence.counts
    if statistic not in AGGREGATES:
        raise ValueError(f"no disclosure rules for the statistic {statistic!r}")
    if statistic == "count":
        return combine(counts.shape, count_masks(counts, appetite))
    # the same count rules: an empty cell reveals that nobody is in the group
    fired = count_masks(counts, appetite)
    if statistic in ("sum", "mean"):
        fired.extend(dominance_masks(evidence, appetite))
    elif statistic in ("min", "max"):
        fired.append((Rule.MIN_MAX, counts >= appetite.min_cell_count))
    return combine(counts.shape, fired)


def model_cells(shape: tuple[int, ...], df_resid: float, appetite: RiskAppetite) -> ObjArray:
    """Every coefficient of a model with fewer residual degrees of freedom than
    ``min_dof`` fails: such a model is close to a lookup table of its rows."""
    low = np.full(shape, df_resid < appetite.min_dof, dtype=bool)
    return combine(shape, [(Rule.LOW_DOF, low)])


def survival_cells(
    at_risk: IntArray, events: IntArray, censored: IntArray, appetite: RiskAppetite
) -> ObjArray:
    """Per time point of a Kaplan-Meier table: fewer than ``survival_min_at_risk`` at
    risk, or a step whose events (or censorings) number 1..``survival_min_events``-1.
    The row's cells (every column) carry the rule."""
    low_risk = at_risk < appetite.survival_min_at_risk
    few_events = (events > 0) & (events < appetite.survival_min_events)
    few_censored = (censored > 0) & (censored < appetite.survival_min_events)
    rows: list[tuple[str, BoolArray]] = [
        (Rule.AT_RISK, low_risk),
        (Rule.EVENTS, few_events | few_censored),
    ]
    return combine(at_risk.shape, rows)


def _rules(value: object) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else ()


def cell_status(cells: ObjArray, appetite: RiskAppetite) -> npt.NDArray[np.str_]:
    """Per-cell status: the worst severity of the rules that fired."""
    out = np.full(cells.shape, "pass", dtype="<U6")
    for index, rules in np.ndenumerate(cells):
        worst = "pass"
        for rule in _rules(rules):
            s = severity(rule, appetite)
            if RANK[s] > RANK[worst]:
                worst = s
        out[index] = worst
    return out


def overall_status(cells: ObjArray, appetite: RiskAppetite) -> str:
    """The table's status: the worst severity of any rule that fired anywhere."""
    fired = {rule for rules in cells.flat for rule in _rules(rules)}
    worst = "pass"
    for rule in fired:
        s = severity(rule, appetite)
        if RANK[s] > RANK[worst]:
            worst = s
    return worst


def rule_counts(cells: ObjArray) -> dict[str, int]:
    """How many cells each rule fired for."""
    counts: dict[str, int] = {}
    for rules in cells.flat:
        for rule in _rules(rules):
            counts[rule] = counts.get(rule, 0) + 1
    return dict(sorted(counts.items()))


APPLIES_TO: dict[Rule, str] = {
    Rule.THRESHOLD: "every table cell: count, sum, mean, median, std, min, max, mode, bins",
    Rule.ZERO: "every table cell (an empty cell of an aggregate table too), bins",
    Rule.NK_DOMINANCE: "sum, mean",
    Rule.P_PERCENT: "sum, mean",
    Rule.NEGATIVE: "sum, mean",
    Rule.MIN_MAX: "min, max (cells at or above the threshold)",
    Rule.LOW_DOF: "ols, logit, probit (every coefficient)",
    Rule.AT_RISK: "survival tables (each time point)",
    Rule.EVENTS: "survival tables (each time point)",
    Rule.BIN_EDGES: "histograms whose edges come from the data",
    Rule.SUPPRESSED: "after `.suppressed()`",
    Rule.SECONDARY: "after `.suppressed()`",
}

PARAMETERS: dict[Rule, str] = {
    Rule.THRESHOLD: "`min_cell_count`",
    Rule.ZERO: "`zeros`",
    Rule.NK_DOMINANCE: "`nk_n`, `nk_k`",
    Rule.P_PERCENT: "`p_percent`",
    Rule.NEGATIVE: "`negatives`",
    Rule.MIN_MAX: "`min_max`",
    Rule.LOW_DOF: "`min_dof`",
    Rule.AT_RISK: "`survival_min_at_risk`",
    Rule.EVENTS: "`survival_min_events`",
    Rule.BIN_EDGES: "",
    Rule.SUPPRESSED: "",
    Rule.SECONDARY: "",
}


def rules_table(appetite: RiskAppetite | None = None) -> str:
    """The rules as a markdown table (generated into docs/output-checking.md)."""
    a = appetite or RiskAppetite()
    lines = [
        "| rule | status by default | applies to | parameters | what it means |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in Rule:
        lines.append(
            f"| `{rule.value}` | {severity(rule, a)} | {APPLIES_TO[rule]} | "
            f"{PARAMETERS[rule]} | {DESCRIPTIONS[rule]} |"
        )
    return "\n".join(lines) + "\n"
