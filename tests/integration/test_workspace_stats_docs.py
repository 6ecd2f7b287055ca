"""The rules table in docs/output-checking.md is generated from the rules themselves."""

from pathlib import Path

from sde.domain.sdc import rules_table

PAGE = Path(__file__).resolve().parents[2] / "docs" / "output-checking.md"


def test_rules_table_in_the_docs_is_current() -> None:
    text = PAGE.read_text()
    start = text.index("<!-- rules:start")
    start = text.index("\n", start) + 1
    end = text.index("<!-- rules:end -->")
    assert text[start:end] == rules_table(), (
        "paste sde.domain.sdc.rules_table() between the rules markers in docs/output-checking.md"
    )


def test_every_rule_is_explained_on_the_page() -> None:
    from sde.domain.sdc import Rule

    text = PAGE.read_text()
    for rule in Rule:
        assert f"`{rule.value}`" in text, rule.value
