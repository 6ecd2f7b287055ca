import pytest

from sde.errors import ConfigError
from sde.services.home import Settings


def test_defaults_and_overrides() -> None:
    assert Settings.from_mapping({}).approvals_required == 2
    assert Settings.from_mapping({"min_cell_count": 5}).min_cell_count == 5


@pytest.mark.parametrize("value", [0, -1, "10", 2.5, True, False, None])
def test_counts_must_be_positive_whole_numbers(value: object) -> None:
    with pytest.raises(ConfigError, match="approvals_required"):
        Settings.from_mapping({"approvals_required": value})
