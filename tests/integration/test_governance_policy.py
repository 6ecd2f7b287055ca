"""``sde.project`` under both engines: a corpus of generated applications decided by the
embedded engine (regopy) and the real OPA must agree; the reference page is current."""

from __future__ import annotations

import copy
import json
import random
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sde.adapters.rego_embedded import RegoEmbeddedEngine, default_policy_dir
from sde.domain.policy import PROJECT, BoardVoteFacts, make_project_input
from sde.services.governance import GENERATED_BEGIN, GENERATED_END, governance_reference

REPO = Path(__file__).resolve().parents[2]
OPA = REPO / ".build" / "bin" / "opa"
DOCS = REPO / "docs" / "governance.md"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MISSING = object()

KINDS = ["lay", "clinical", "data_protection", None, "finance"]


def vote(voter: str, decision: str, kind: str | None, **changes: object) -> BoardVoteFacts:
    values: dict[str, object] = {
        "voter": voter,
        "decision": decision,
        "board_member": True,
        "kind": kind,
        "banned": False,
        "conflicts": (),
    }
    values.update(changes)
    return BoardVoteFacts(**values)  # type: ignore[arg-type]


BOARD = [
    vote("b-lay", "approve", "lay"),
    vote("b-clin", "approve", "clinical"),
    vote("b-dpo", "reject", "data_protection"),
]

FIELDS: dict[str, list[object]] = {
    "status": ["published", "draft", "approved", "rejected", "suspended", None],
    "purpose": ["research", "planning", "marketing", "policing", "direct_care", None],
    "uses": [
        ["health_research"],
        [],
        ["health_research", "advertising"],
        ["underwriting", "deportation"],
        ["benefit_eligibility"],
        ["law_enforcement", "service_planning"],
        ["insurance_status_research"],
    ],
    "sponsor_type": ["commercial", "nhs", "academic", "charity", "pharma", None],
    "sponsor_banned": [False, True],
    "legal_basis": ["s251_support", "consent", "legal_requirement", "public_task", "other", None],
    "national_opt_out_applies": [True, False, None],
    "summary_given": [True, False],
    "public_benefit_given": [True, False],
    "benefit_sharing_given": [True, False],
    "exclusive_access": [False, True, None],
    "start_date": [date(2025, 7, 1), None, date(2027, 6, 30), date(2028, 1, 1)],
    "end_date": [date(2027, 6, 30), None, date(2025, 7, 1)],
    "comment_period_ends": [
        NOW - timedelta(seconds=1),
        NOW,
        NOW + timedelta(seconds=1),
        NOW + timedelta(days=28),
        None,
    ],
    "datasets": [
        {"events": {"code": True, "date": True}, "patients": {"sex": True}},
        {},
        {"events": {"code": True, "date": False}},
        {"events": {}},
        {"events": {"code": False}, "patients": {"sex": False}},
    ],
    "votes": [
        BOARD,
        [],
        BOARD[:2],
        [*BOARD, vote("b-4", "reject", "lay")],
        [vote("b-lay", "approve", "lay", conflicts=("declared",)), *BOARD[1:]],
        [vote("b-lay", "approve", "lay", banned=True), *BOARD[1:]],
        [vote("b-lay", "approve", "lay", board_member=False), *BOARD[1:]],
        [vote("b-lay", "abstain", "lay"), *BOARD[1:]],
        [vote("b-1", "approve", "clinical"), vote("b-2", "approve", "clinical"), BOARD[2]],
        [*BOARD, vote("b-5", "approve", None), vote("b-6", "approve", "finance")],
        [
            vote("b-lay", "reject", "lay"),
            vote("b-clin", "reject", "clinical"),
            vote("b-dpo", "approve", "data_protection"),
            vote("b-x", "approve", "lay", conflicts=("sponsor_organisation",)),
        ],
    ],
    "min_votes": [None, 1, 3, 4, 5],
}


def base_values() -> dict[str, object]:
    return {field: values[0] for field, values in FIELDS.items()}


def document(values: dict[str, object]) -> dict[str, object]:
    return make_project_input(project_id="prj-1", now=NOW, **values)  # type: ignore[arg-type]


def corpus() -> list[tuple[str, dict[str, object]]]:
    cases: list[tuple[str, dict[str, object]]] = [("base", document(base_values()))]
    for field, values in FIELDS.items():
        for value in values[1:]:
            changed = base_values()
            changed[field] = value
            cases.append((f"{field}={value!r}", document(changed)))
    rng = random.Random(5)
    for number in range(260):
        changed = base_values()
        for field, values in FIELDS.items():
            if rng.random() < 0.2:
                changed[field] = rng.choice(values)
        cases.append((f"random #{number}", document(changed)))
    broken = document(base_values())
    cases.append(("empty", {}))
    cases.append(("application missing", {k: v for k, v in broken.items() if k != "application"}))
    odd = copy.deepcopy(broken)
    odd["votes"] = "b-lay"
    cases.append(("votes not a list", odd))
    odd = copy.deepcopy(broken)
    odd["application"]["datasets"] = ["events"]  # type: ignore[index]
    cases.append(("dataset not an object", odd))
    odd = copy.deepcopy(broken)
    odd["settings"] = {"min_votes": 2.5}
    cases.append(("fractional min_votes", odd))
    return cases


@pytest.fixture(scope="module")
def engine() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(default_policy_dir())


def opa_decisions(documents: list[dict[str, object]]) -> list[tuple[bool, list[str]]]:
    """Every document decided by the real OPA in one evaluation."""
    if not OPA.exists():
        pytest.fail(
            f"the OPA binary {OPA} is missing: "
            "build it with `SDE_SETUP_OPA=1 bash scripts/setup.sh`"
        )
    query = (
        "[[a, d] | some doc in input; "
        "a := data.sde.project.allow with input as doc; "
        "d := data.sde.project.deny with input as doc]"
    )
    result = subprocess.run(
        [
            str(OPA),
            "eval",
            "--format",
            "json",
            "--strict-builtin-errors",
            "-d",
            str(default_policy_dir()),
            "-I",
            query,
        ],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    return [(bool(allow), sorted(deny)) for allow, deny in value]


@pytest.mark.opa
def test_embedded_engine_and_opa_agree_on_every_application(engine: RegoEmbeddedEngine) -> None:
    cases = corpus()
    assert len(cases) >= 300
    expected = opa_decisions([doc for _, doc in cases])
    allowed = 0
    for (name, doc), (allow, deny) in zip(cases, expected, strict=True):
        decision = engine.decide(PROJECT, doc)
        assert not decision.is_engine_error, name
        assert (decision.allow, sorted(decision.reasons)) == (allow, deny), name
        allowed += allow
    # The corpus exercises both answers.
    assert 0 < allowed < len(cases) // 2


def test_governance_page_is_current() -> None:
    page = DOCS.read_text(encoding="utf-8")
    start, end = page.index(GENERATED_BEGIN), page.index(GENERATED_END) + len(GENERATED_END)
    assert page[start:end] == governance_reference(default_policy_dir()), (
        "regenerate the section of docs/governance.md: python -m sde.services.governance"
    )
