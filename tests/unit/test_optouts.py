import pytest

from sde.domain.optouts import NATIONAL, TYPE1, registers_for


def test_national_opt_out_applies_to_every_dataset_unless_exempt() -> None:
    assert registers_for("hospital", "research", True) == {NATIONAL}
    assert registers_for("hospital", "planning", False) == frozenset()


def test_type1_removes_gp_data_even_for_exempt_projects() -> None:
    assert registers_for("gp", "research", False) == {TYPE1}
    assert registers_for("gp", "planning", True) == {NATIONAL, TYPE1}


@pytest.mark.parametrize("purpose", ["marketing", "insurance", ""])
def test_other_purposes_refused(purpose: str) -> None:
    with pytest.raises(ValueError):
        registers_for("gp", purpose, True)
