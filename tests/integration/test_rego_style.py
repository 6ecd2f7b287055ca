"""The Rego style rules of STYLE.md, checked on every policy.

Regal (Rego's linter) cannot be built here: the Go module proxy refuses its module. These
checks cover the rules we rely on; `opa check --strict` and `opa fmt` run in `./run check`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sde.domain.governance import policy_rules

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MODULES = sorted(p for p in POLICIES.glob("*.rego") if not p.name.endswith("_test.rego"))
ASSIGN_BY_UNIFICATION = re.compile(r"(?<![=!<>:])=(?!=)")


def code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines without comments and string literals (so `=` in a message is not code)."""
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.split("#", 1)[0])
        out.append((number, code))
    return out


def test_there_are_policies() -> None:
    assert {p.stem for p in MODULES} >= {"access", "egress", "project", "ingest"}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_package_matches_the_file_and_has_tests(module: Path) -> None:
    assert f"package sde.{module.stem}\n" in module.read_text()
    assert (POLICIES / f"{module.stem}_test.rego").exists()


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_undefined_means_deny(module: Path) -> None:
    assert "default allow := false" in module.read_text()


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_no_wildcard_index_and_no_unification_assignment(module: Path) -> None:
    problems = []
    for number, code in code_lines(module):
        if "[_]" in code:
            problems.append(f"line {number}: x[_] (use `some x in xs`)")
        if ASSIGN_BY_UNIFICATION.search(code):
            problems.append(f"line {number}: `=` (use := or ==)")
    assert problems == []


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_every_deny_rule_has_an_id_in_its_package(module: Path) -> None:
    source = module.read_text()
    rules = policy_rules(source)
    deny_rules = len(re.findall(r"^deny contains", source, flags=re.M))
    assert len(rules) == deny_rules
    assert all(rule.id.startswith(f"{module.stem}.") for rule in rules)
    assert all(rule.title for rule in rules)


def test_rule_ids_are_unique() -> None:
    ids = [rule.id for module in MODULES for rule in policy_rules(module.read_text())]
    assert len(ids) == len(set(ids))


def test_the_checks_can_fail() -> None:
    assert ASSIGN_BY_UNIFICATION.search("x = 1")
    assert not ASSIGN_BY_UNIFICATION.search("x := 1; y == 2; z != 3; a <= b; c >= d")
