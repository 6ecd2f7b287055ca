"""Each rule on small hand-made tables, boundary values included."""

from __future__ import annotations

import numpy as np
import pytest

from sde.domain.sdc import (
    Evidence,
    RiskAppetite,
    aggregate_cells,
    cell_status,
    evidence_from_codes,
    model_cells,
    overall_status,
    rule_counts,
    survival_cells,
)

A = RiskAppetite()


def cells_for(contributions: list[list[float]], statistic: str = "mean") -> list[tuple[str, ...]]:
    """One cell per list of contributions (a 1 x n table)."""
    codes = np.array([i for i, c in enumerate(contributions) for _ in c], dtype=np.int64)
    values = np.array([v for c in contributions for v in c], dtype=float)
    ev = evidence_from_codes(codes, (1, len(contributions)), values, top_n=A.nk_n)
    return list(aggregate_cells(statistic, ev, A)[0])


def test_count_threshold_is_inclusive_at_ten() -> None:
    counts = np.array([[9, 10, 11, 1]], dtype=np.int64)
    cells = aggregate_cells("count", Evidence(counts=counts), A)
    assert list(cells[0]) == [("threshold",), (), (), ("threshold",)]


def test_zero_counts_follow_the_appetite() -> None:
    counts = np.array([[0, 20]], dtype=np.int64)
    assert list(aggregate_cells("count", Evidence(counts=counts), A)[0]) == [("zero",), ()]
    assert overall_status(aggregate_cells("count", Evidence(counts=counts), A), A) == "review"
    lenient = RiskAppetite(zeros="pass")
    assert list(aggregate_cells("count", Evidence(counts=counts), lenient)[0]) == [(), ()]
    strict = RiskAppetite(zeros="fail")
    assert overall_status(aggregate_cells("count", Evidence(counts=counts), strict), strict) == (
        "fail"
    )


def test_nk_dominance_fires_above_k_not_at_it() -> None:
    # two largest are exactly 90% of the total: not dominant ("no more than k")
    at_k = [45.0, 45.0] + [1.0] * 10
    # just over 90%
    over_k = [46.0, 45.0] + [0.9] * 10
    even = [10.0] * 12
    assert cells_for([at_k, over_k, even]) == [(), ("nk_dominance",), ()]


def test_p_percent_edge() -> None:
    # rest (total - x1 - x2) == p * x1 exactly: safe; just below: fires
    at_p = [100.0, 50.0] + [1.0] * 10  # rest 10 == 0.1 * 100
    below_p = [100.0, 50.0] + [0.99] * 10  # rest 9.9 < 10
    out = cells_for([at_p, below_p])
    assert "p_percent" not in out[0]
    assert "p_percent" in out[1]


def test_single_contributor_fails_threshold_and_both_dominance_rules() -> None:
    assert cells_for([[42.0]]) == [("threshold", "nk_dominance", "p_percent")]


def test_tied_largest_values_count_as_two_people() -> None:
    ev = evidence_from_codes(
        np.zeros(12, dtype=np.int64), (1, 1), np.array([50.0, 50.0] + [1.0] * 10)
    )
    assert ev.top is not None
    assert list(ev.top[0, 0]) == [50.0, 50.0]


def test_negative_contributions_mean_review_and_no_dominance() -> None:
    out = cells_for([[-5.0] + [10.0] * 11, [1000.0] + [1.0] * 11])
    assert out == [("negative",), ("nk_dominance", "p_percent")]
    codes = np.array([0] + [0] * 11, dtype=np.int64)
    ev = evidence_from_codes(codes, (1, 1), np.array([-5.0] + [10.0] * 11))
    cells = aggregate_cells("sum", ev, A)
    assert overall_status(cells, A) == "review"
    assert overall_status(cells, RiskAppetite(negatives="fail")) == "fail"


def test_missing_values_are_not_contributors() -> None:
    out = cells_for([[1.0] * 9 + [float("nan")] * 5])
    assert "threshold" in out[0]


def test_empty_cell_of_a_mean_table_is_a_zero() -> None:
    codes = np.zeros(12, dtype=np.int64)
    ev = evidence_from_codes(codes, (1, 2), np.ones(12))
    assert list(aggregate_cells("mean", ev, A)[0]) == [(), ("zero",)]


def test_median_std_mode_use_the_threshold_only() -> None:
    for statistic in ("median", "std", "mode"):
        out = cells_for([[1.0] * 9, [1000.0] + [1.0] * 11], statistic)
        assert out == [("threshold",), ()], statistic


@pytest.mark.parametrize("statistic", ["min", "max"])
def test_min_max_fail_below_threshold_and_are_reviewed_above(statistic: str) -> None:
    out = cells_for([[1.0] * 9, [1.0] * 10], statistic)
    assert out == [("threshold",), ("min_max",)]
    codes = np.array([0] * 10, dtype=np.int64)
    ev = evidence_from_codes(codes, (1, 1), np.ones(10))
    assert overall_status(aggregate_cells(statistic, ev, A), A) == "review"
    strict = RiskAppetite(min_max="fail")
    assert overall_status(aggregate_cells(statistic, ev, strict), strict) == "fail"


def test_model_residual_degrees_of_freedom() -> None:
    assert overall_status(model_cells((3, 2), 10.0, A), A) == "pass"
    low = model_cells((3, 2), 9.0, A)
    assert overall_status(low, A) == "fail"
    assert all(c == ("low_dof",) for c in low.flat)


def test_survival_thresholds_per_time_point() -> None:
    at_risk = np.array([50, 40, 12, 9], dtype=np.int64)
    events = np.array([10, 3, 0, 9], dtype=np.int64)
    censored = np.array([0, 25, 3, 0], dtype=np.int64)
    cells = survival_cells(at_risk, events, censored, A)
    assert list(cells) == [
        (),
        ("survival_events",),
        ("survival_events",),
        ("survival_at_risk", "survival_events"),
    ]


def test_cell_status_and_rule_counts() -> None:
    counts = np.array([[0, 5, 30]], dtype=np.int64)
    cells = aggregate_cells("count", Evidence(counts=counts), A)
    assert list(cell_status(cells, A)[0]) == ["review", "fail", "pass"]
    assert rule_counts(cells) == {"threshold": 1, "zero": 1}


def test_unknown_statistic_is_refused() -> None:
    with pytest.raises(ValueError, match="variance"):
        aggregate_cells("variance", Evidence(counts=np.zeros((1, 1), dtype=np.int64)), A)


def test_evidence_matches_a_plain_reference_on_random_data() -> None:
    rng = np.random.default_rng(5)
    for trial in range(20):
        shape = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        size = shape[0] * shape[1]
        n = int(rng.integers(0, 60))
        codes = rng.integers(-1, size, n).astype(np.int64)
        values = rng.choice([-3.0, 0.0, 1.0, 2.0, 2.0, 7.5, np.nan], n)
        ev = evidence_from_codes(codes, shape, values, top_n=3)
        assert ev.sums is not None
        assert ev.top is not None
        assert ev.negatives is not None
        for cell in range(size):
            mine = sorted(
                (v for c, v in zip(codes, values, strict=True) if c == cell and not np.isnan(v)),
                reverse=True,
            )
            r, c = divmod(cell, shape[1])
            assert ev.counts[r, c] == len(mine), trial
            assert ev.sums[r, c] == pytest.approx(sum(mine)), trial
            assert bool(ev.negatives[r, c]) == any(v < 0 for v in mine), trial
            padded = [*mine, 0.0, 0.0, 0.0][:3]
            assert list(ev.top[r, c]) == pytest.approx(padded), trial
