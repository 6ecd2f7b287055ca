from sde.domain.disclosure import CheckStatus, check_frequency_table, count_columns, overall


def by_name(results):  # type: ignore[no-untyped-def]
    return {r.name: r for r in results}


def test_safe_table_passes() -> None:
    rows = [["F", "40-49", "120"], ["M", "40-49", "98"], ["U", "40-49", "0"]]
    results = check_frequency_table(["sex", "age_band", "n"], rows, 10)
    assert overall(results) is CheckStatus.PASS
    assert by_name(results)["min_cell_count"].details["zero_cells"] == 1


def test_small_cells_fail_and_are_counted_without_values() -> None:
    rows = [["F", "120"], ["M", "3"], ["U", "7"]]
    results = check_frequency_table(["sex", "n"], rows, 10)
    small = by_name(results)["min_cell_count"]
    assert small.status is CheckStatus.FAIL
    assert small.details["failing_cells"] == 2
    assert "2 of 3 cells" in small.message
    assert overall(results) is CheckStatus.FAIL


def test_threshold_is_inclusive_at_the_minimum() -> None:
    results = check_frequency_table(["n"], [["10"]], 10)
    assert overall(results) is CheckStatus.PASS
    results = check_frequency_table(["n"], [["9"]], 10)
    assert overall(results) is CheckStatus.FAIL


def test_non_numeric_or_fractional_counts_fail() -> None:
    results = check_frequency_table(["n"], [["12.5"], ["lots"], ["-3"]], 10)
    assert by_name(results)["counts_are_whole_numbers"].details["failing_cells"] == 3


def test_no_count_column_fails() -> None:
    results = check_frequency_table(["sex", "mean_age"], [["F", "41.2"]], 10)
    assert overall(results) is CheckStatus.FAIL
    assert results[0].name == "count_columns"


def test_declared_count_columns_must_exist() -> None:
    results = check_frequency_table(["sex", "n"], [["F", "20"]], 10, declared_counts=["total"])
    assert overall(results) is CheckStatus.FAIL


def test_conventional_count_column_names() -> None:
    assert count_columns(["region", "n_patients", "deaths_count", "mean"]) == [
        "n_patients",
        "deaths_count",
    ]


def test_empty_results_fail_closed() -> None:
    assert overall([]) is CheckStatus.FAIL


def test_zeros_are_reported_under_an_explicit_appetite() -> None:
    from sde.domain.sdc import RiskAppetite

    rows = [["F", "120"], ["M", "0"]]
    results = check_frequency_table(["sex", "n"], rows, 10, appetite=RiskAppetite())
    zeros = by_name(results)["zeros"]
    assert zeros.status is CheckStatus.REVIEW
    assert zeros.details["zero_cells"] == 1
    assert overall(results) is CheckStatus.REVIEW
    lenient = check_frequency_table(["sex", "n"], rows, 10, appetite=RiskAppetite(zeros="pass"))
    assert overall(lenient) is CheckStatus.PASS


def test_min_cell_count_argument_wins_over_the_appetite() -> None:
    from sde.domain.sdc import RiskAppetite

    results = check_frequency_table(["n"], [["12"]], 15, appetite=RiskAppetite())
    assert by_name(results)["min_cell_count"].status is CheckStatus.FAIL


def test_infinite_and_missing_counts_fail_rather_than_crash() -> None:
    results = check_frequency_table(["n"], [["inf"], ["nan"], ["-inf"], ["12"]], 10)
    assert by_name(results)["counts_are_whole_numbers"].details["failing_cells"] == 3
    assert overall(results) is CheckStatus.FAIL
