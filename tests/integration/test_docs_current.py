"""Reference pages generated from the code are current."""

from pathlib import Path

from sde.cli.reference import reference
from sde.domain.releases import states_table

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_release_states_page_is_current() -> None:
    page = DOCS / "reference/release-states.md"
    assert page.read_text() == states_table(), (
        "run: python -m sde.domain.releases > docs/reference/release-states.md"
    )


def test_cli_reference_page_is_current() -> None:
    page = DOCS / "reference/cli.md"
    assert page.read_text() == reference(), (
        "run: python -m sde.cli.reference > docs/reference/cli.md"
    )


def test_every_page_linked_from_the_index_exists() -> None:
    import re

    index = (DOCS / "index.md").read_text()
    links = re.findall(r"\]\(([^)#]+\.md)\)", index)
    assert links
    missing = [link for link in links if not (DOCS / link).exists()]
    assert not missing, missing
