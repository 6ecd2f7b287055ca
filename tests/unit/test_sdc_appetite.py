import pytest

from sde.domain.sdc import RiskAppetite
from sde.errors import ConfigError


def test_defaults_are_the_handbook_values() -> None:
    a = RiskAppetite()
    assert (a.min_cell_count, a.zeros, a.nk_n, a.nk_k, a.p_percent, a.min_dof) == (
        10,
        "review",
        2,
        0.9,
        0.1,
        10,
    )
    assert (a.negatives, a.min_max, a.round_base) == ("review", "review", 5)


def test_loads_the_sdc_section_of_settings() -> None:
    a = RiskAppetite.from_settings(
        10, {"sdc": {"min_cell_count": 7, "nk_k": 0.8, "zeros": "fail"}, "other": 1}
    )
    assert (a.min_cell_count, a.nk_k, a.zeros) == (7, 0.8, "fail")


def test_settings_min_cell_count_applies_without_an_sdc_section() -> None:
    assert RiskAppetite.from_settings(15, {}).min_cell_count == 15


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"min_cell_count": 0}, "min_cell_count"),
        ({"min_cell_count": True}, "min_cell_count"),
        ({"min_cell_count": "10"}, "min_cell_count"),
        ({"nk_k": 1.0}, "nk_k"),
        ({"nk_k": 0}, "nk_k"),
        ({"p_percent": "ten"}, "p_percent"),
        ({"zeros": "ignore"}, "zeros"),
        ({"negatives": "pass"}, "negatives"),
        ({"min_max": "maybe"}, "min_max"),
        ({"min_cell_cuont": 10}, "unknown sdc settings: min_cell_cuont"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RiskAppetite.from_mapping(data)


def test_sdc_section_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        RiskAppetite.from_settings(10, {"sdc": [1, 2]})


def test_round_trips_through_json() -> None:
    a = RiskAppetite(min_cell_count=5, p_percent=0.2)
    assert RiskAppetite.from_mapping(a.to_json()) == a
