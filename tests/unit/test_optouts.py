"""The opt-out rule table: which rules apply to which project terms and data origin,
and how patients' choices are validated."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from sde.domain.optouts import (
    NATIONAL,
    RULES,
    TYPE1,
    Choice,
    ExclusionTerms,
    Scope,
    make_choice_event,
    normalise_organisation,
    normalise_target,
    parse_recorded_at,
    rules_for,
)
from sde.errors import InputError

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
NHS_NUMBER = "9434765919"  # valid Modulus 11; must never appear in a message

PURPOSES = ("research", "planning")
SPONSOR_TYPES = ("nhs", "academic", "charity", "commercial", None)
ORIGINS = ("gp", "hospital", "registry", None)
ORGANISATIONS = ("University of Leeds", None)


def expected_rules(
    purpose: str, sponsor_type: str | None, exempt: bool, origin: str | None
) -> list[str]:
    """The rule table written out by hand, independently of the implementation."""
    rules = []
    if not exempt:
        rules.append("national_opt_out")
    if origin in ("gp", None):
        rules.append("type1_opt_out")
    rules.append("choice:research" if purpose == "research" else "choice:planning")
    if sponsor_type in ("commercial", None):
        rules.append("choice:commercial")
    rules += ["choice:organisation", "choice:project"]
    return rules


COMBINATIONS = list(
    itertools.product(PURPOSES, SPONSOR_TYPES, (False, True), ORIGINS, ORGANISATIONS)
)


@pytest.mark.parametrize(("purpose", "sponsor_type", "exempt", "origin", "org"), COMBINATIONS)
def test_rule_table(
    purpose: str, sponsor_type: str | None, exempt: bool, origin: str | None, org: str | None
) -> None:
    terms = ExclusionTerms(
        project_id="diabetes-outcomes",
        purpose=purpose,
        national_opt_out_applies=not exempt,
        sponsor_type=sponsor_type,
        sponsor_organisation=org,
        origin=origin,
    )
    rules = rules_for(terms)
    assert [r.name for r in rules] == expected_rules(purpose, sponsor_type, exempt, origin)
    by_name = {r.name: r for r in rules}
    # Registers name their table; choices name their scope and the targets that count.
    for name in (NATIONAL, TYPE1):
        if name in by_name:
            assert by_name[name].register == name
            assert by_name[name].scope is None
    assert by_name["choice:project"].targets == {"diabetes-outcomes"}
    organisation = by_name["choice:organisation"].targets
    assert organisation == (None if org is None else {"university of leeds"})
    for scope in (Scope.RESEARCH, Scope.PLANNING, Scope.COMMERCIAL):
        rule = by_name.get(f"choice:{scope.value}")
        if rule is not None:
            assert rule.scope is scope
            assert rule.targets == {""}


def test_the_table_covers_every_rule() -> None:
    seen = {
        r.name
        for purpose, sponsor, exempt, origin, org in COMBINATIONS
        for r in rules_for(ExclusionTerms("p1", purpose, not exempt, sponsor, org, origin))
    }
    assert seen == set(RULES)
    assert len(COMBINATIONS) == 2 * 5 * 2 * 4 * 2


def test_exemption_sets_aside_only_the_national_opt_out() -> None:
    exempt = ExclusionTerms("p1", "research", False, "commercial", "Acme", "gp")
    names = [r.name for r in rules_for(exempt)]
    assert NATIONAL not in names
    assert {TYPE1, "choice:research", "choice:commercial"} <= set(names)


@pytest.mark.parametrize("purpose", ["marketing", "insurance", "", "Research"])
def test_other_purposes_refused(purpose: str) -> None:
    with pytest.raises(InputError, match="research or planning"):
        ExclusionTerms("p1", purpose, True)


def test_unknown_sponsor_type_refused() -> None:
    with pytest.raises(InputError, match="sponsor type"):
        ExclusionTerms("p1", "research", True, sponsor_type="pharma")


def test_project_id_required() -> None:
    with pytest.raises(InputError, match="project"):
        ExclusionTerms("", "research", True)


# --- choices -----------------------------------------------------------------------------


def test_organisation_names_match_whatever_the_spacing_and_case() -> None:
    assert normalise_organisation("  University   of LEEDS ") == "university of leeds"
    assert normalise_target(Scope.ORGANISATION, "Acme  Pharma") == "acme pharma"


def test_project_targets_are_project_ids() -> None:
    assert normalise_target(Scope.PROJECT, " Diabetes-Outcomes ") == "diabetes-outcomes"
    with pytest.raises(InputError, match="project id"):
        normalise_target(Scope.PROJECT, "not a project!")


@pytest.mark.parametrize("scope", [Scope.RESEARCH, Scope.PLANNING, Scope.COMMERCIAL])
def test_untargeted_scopes_refuse_a_target_without_repeating_it(scope: Scope) -> None:
    assert normalise_target(scope, "  ") == ""
    assert normalise_target(scope, None) == ""
    with pytest.raises(InputError, match="takes no target") as refused:
        normalise_target(scope, NHS_NUMBER)
    assert NHS_NUMBER not in str(refused.value)


@pytest.mark.parametrize("scope", [Scope.ORGANISATION, Scope.PROJECT])
def test_targeted_scopes_need_a_target(scope: Scope) -> None:
    with pytest.raises(InputError, match="needs a target"):
        normalise_target(scope, "")
    with pytest.raises(InputError, match="at most"):
        normalise_target(scope, "x" * 201)


def test_recorded_at_forms() -> None:
    assert parse_recorded_at("2026-01-02", NOW) == dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert parse_recorded_at("2026-01-02T10:00:00+01:00", NOW) == dt.datetime(
        2026, 1, 2, 9, tzinfo=dt.UTC
    )
    assert parse_recorded_at("2026-01-02T10:00:00Z", NOW).tzinfo == dt.UTC
    # a little clock skew is tolerated; the future is not
    assert parse_recorded_at((NOW + dt.timedelta(minutes=1)).isoformat(), NOW) > NOW
    with pytest.raises(InputError, match="future"):
        parse_recorded_at("2027-01-01", NOW)
    with pytest.raises(InputError, match="required"):
        parse_recorded_at(" ", NOW)
    with pytest.raises(InputError, match="ISO 8601") as refused:
        parse_recorded_at(NHS_NUMBER, NOW)
    assert NHS_NUMBER not in str(refused.value)


def test_make_choice_event() -> None:
    event = make_choice_event("organisation", "Acme Pharma", "opt_out", "2026-01-02", NOW)
    assert (event.scope, event.target, event.choice) == (
        Scope.ORGANISATION,
        "acme pharma",
        Choice.OPT_OUT,
    )
    for scope, choice in [(NHS_NUMBER, "opt_out"), ("research", NHS_NUMBER)]:
        with pytest.raises(InputError) as refused:
            make_choice_event(scope, "", choice, "2026-01-02", NOW)
        assert NHS_NUMBER not in str(refused.value)
