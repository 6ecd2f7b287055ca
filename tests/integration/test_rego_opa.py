"""The policies under the real OPA: their Rego tests, strict checks, and a corpus of inputs
replayed through both the embedded engine (regopy) and ``opa eval``, which must agree.

The OPA binary is built from its Go module by ``SDE_SETUP_OPA=1 bash scripts/setup.sh``
into ``<repository>/.build/bin/opa``; without it these tests fail (they are not skipped).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sde.adapters.rego_embedded import RegoEmbeddedEngine, default_policy_dir
from sde.domain.policy import ACCESS, CANARIES, EGRESS, INGEST
from sde.services.ingest import ingest_policy_input, load_spec, shipped_datasets

pytestmark = pytest.mark.opa

REPO = Path(__file__).resolve().parents[2]
OPA = REPO / ".build" / "bin" / "opa"
POLICIES = REPO / "policies"
SHA = "0123456789abcdef" * 4
MISSING = object()  # a field left out of the input altogether

Case = tuple[str, dict[str, object]]


@pytest.fixture(scope="module")
def opa() -> Path:
    if not (OPA.is_file() and os.access(OPA, os.X_OK)):
        pytest.fail(
            f"the OPA binary {OPA} is missing: "
            "build it with `SDE_SETUP_OPA=1 bash scripts/setup.sh`"
        )
    return OPA


def run_opa(opa: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(opa), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_rego_tests_pass_under_opa(opa: Path) -> None:
    result = run_opa(opa, "test", str(POLICIES), "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"^PASS: (\d+)/(\d+)$", result.stdout, re.MULTILINE)
    assert summary is not None, result.stdout
    passed, total = int(summary.group(1)), int(summary.group(2))
    assert passed == total
    assert total >= 50
    for package in ("sde.access_test", "sde.egress_test", "sde.ingest_test"):
        assert f"data.{package}.test_" in result.stdout, package


def test_policies_pass_strict_check_and_are_formatted(opa: Path) -> None:
    check = run_opa(opa, "check", "--strict", str(POLICIES))
    assert check.returncode == 0, check.stdout + check.stderr
    fmt = run_opa(opa, "fmt", "--list", str(POLICIES))
    assert fmt.returncode == 0, fmt.stderr
    assert fmt.stdout.strip() == "", f"not formatted (opa fmt): {fmt.stdout}"


# --- the corpus: regopy and OPA must agree --------------------------------------------


def with_path(document: dict[str, object], path: str, value: object) -> dict[str, object]:
    """A deep copy of ``document`` with ``a/b/c`` set to ``value`` (or removed: MISSING)."""
    result = copy.deepcopy(document)
    *parents, last = path.split("/")
    node: object = result
    for key in parents:
        assert isinstance(node, dict)
        node = node[key]
    assert isinstance(node, dict)
    if value is MISSING:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)
    return result


ACCESS_BASE: dict[str, object] = {
    "action": "read_dataset",
    "today": "2025-06-01",
    "person": {
        "id": "r-ada",
        "role": "researcher",
        "accredited_until": "2025-12-31",
        "banned_until": None,
    },
    "project": {
        "id": "prj-1",
        "status": "approved",
        "members": ["r-ada", "r-bob"],
        "start_date": "2025-01-01",
        "end_date": "2026-12-31",
        "datasets": {"events": ["pid", "event_date", "code"], "admissions": ["pid"]},
    },
    "request": {"dataset": "events", "columns": ["pid", "code"]},
}

# Each field's values: the first is the base value, the rest vary it (MISSING drops it).
ACCESS_FIELDS: dict[str, list[object]] = {
    "action": ["read_dataset", "open_workspace", "build_extract", "delete", None, MISSING, 3],
    "today": [
        "2025-06-01",
        "2024-12-31",
        "2027-01-01",
        "2025-06-01T00:00:00Z",
        "2025-06-00",
        20250601,
        MISSING,
    ],
    "person/id": ["r-ada", "r-eve", "op-1", "", 7, MISSING],
    "person/role": ["researcher", "operator", MISSING, 3],
    "person/accredited_until": [
        "2025-12-31",
        "2025-06-01",
        "2025-05-31",
        None,
        MISSING,
        "31/12/2025",
        "2025-13-01",
        ["2099-01-01"],
    ],
    "person/banned_until": [
        None,
        MISSING,
        "2025-05-31",
        "2025-06-01",
        "2030-01-01",
        "forever",
        True,
    ],
    "project/id": ["prj-1", "", MISSING, 12],
    "project/status": ["approved", "draft", "suspended", "closed", MISSING, 1],
    "project/members": [["r-ada", "r-bob"], ["r-bob"], [], "r-ada", MISSING, ["op-1", "r-ada"]],
    "project/start_date": ["2025-01-01", None, MISSING, "2025-06-01", "2025-06-02", "Jan 2025"],
    "project/end_date": ["2026-12-31", None, MISSING, "2025-06-01", "2025-05-31", 2026],
    "project/datasets": [
        {"events": ["pid", "event_date", "code"], "admissions": ["pid"]},
        {},
        {"events": "pid"},
        MISSING,
        ["events"],
    ],
    "request/dataset": ["events", "admissions", "deaths", None, MISSING, 3],
    "request/columns": [["pid", "code"], ["pid"], ["pid", "nhs_number"], [], "pid", [3], MISSING],
}

ACCESS_WHOLE: dict[str, list[object]] = {
    "person": [None, MISSING, "r-ada", []],
    "project": [None, MISSING, "prj-1"],
    "request": [None, MISSING, ["events"]],
}


def access_cases() -> list[Case]:
    cases: list[Case] = [("access: base", copy.deepcopy(ACCESS_BASE)), ("access: empty", {})]
    # every variation of every field on its own
    for path, values in ACCESS_FIELDS.items():
        for value in values[1:]:
            cases.append((f"access: {path}={value!r}", with_path(ACCESS_BASE, path, value)))
    for path, values in ACCESS_WHOLE.items():
        for value in values:
            cases.append((f"access: {path}={value!r}", with_path(ACCESS_BASE, path, value)))
    operator = with_path(with_path(ACCESS_BASE, "person/id", "op-1"), "person/role", "operator")
    for action in ("build_extract", "open_workspace", "read_dataset"):
        cases.append((f"access: operator {action}", with_path(operator, "action", action)))
    # random combinations, mostly of base values so that some are allowed
    rng = random.Random(20250601)
    for number in range(60):
        document = copy.deepcopy(ACCESS_BASE)
        for path, values in ACCESS_FIELDS.items():
            if rng.random() < 0.15:
                document = with_path(document, path, rng.choice(values[1:]))
        for path, values in ACCESS_WHOLE.items():
            if rng.random() < 0.03:
                document = with_path(document, path, rng.choice(values))
        cases.append((f"access: random #{number}", document))
    return cases


def check(name: str, state: object = "pass") -> dict[str, object]:
    return {"name": name, "status": state}


def review(reviewer: object, decision: object) -> dict[str, object]:
    return {"reviewer": reviewer, "decision": decision}


TABLE: dict[str, object] = {
    "name": "table1.csv",
    "sha256": SHA,
    "checks": [check("dominance"), check("small_numbers")],
    "rows": 10,
    "cells": 20,
}
FIGURE: dict[str, object] = {
    "name": "figure1.csv",
    "sha256": SHA,
    "checks": [check("small_numbers")],
    "rows": 0,
    "cells": 0,
}
BUDGET = {"rows_limit": 100, "cells_limit": 100, "rows_used": 50, "cells_used": 50}

EGRESS_BASE: dict[str, object] = {
    "settings": {},
    "budget": BUDGET,
    "request": {
        "id": "rr-1",
        "author": "r-ada",
        "status": "approved",
        "project_status": "approved",
        "files": [TABLE, FIGURE],
        "reviews": [review("c-1", "approve"), review("c-2", "approve")],
    },
}

EGRESS_FIELDS: dict[str, list[object]] = {
    "settings": [
        {},
        {"approvals_required": 1},
        {"approvals_required": 3},
        {"approvals_required": 0},
        {"approvals_required": -2},
        {"approvals_required": 1.5},
        {"approvals_required": 2.0},
        {"approvals_required": "2"},
        {"approvals_required": None},
        MISSING,
        "strict",
    ],
    "request/status": ["approved", "in_review", "released", "returned", MISSING, 5],
    "request/author": ["r-ada", "", None, MISSING, 4, "c-1"],
    "request/project_status": ["approved", "suspended", "closed", None, MISSING, 3],
    "request/files": [
        [TABLE, FIGURE],
        [],
        MISSING,
        "table1.csv",
        [TABLE],
        [TABLE, {**FIGURE, "checks": [check("small_numbers", "fail")]}],
        [{**TABLE, "checks": [check("dominance"), check("small_numbers", "warn")]}],
        [{**TABLE, "checks": [check("dominance"), {"name": "small_numbers"}]}],
        [{**TABLE, "checks": []}],
        [{**TABLE, "checks": "pass"}],
        [{k: v for k, v in TABLE.items() if k != "checks"}],
        [{**TABLE, "sha256": None}],
        [{**TABLE, "sha256": "abc"}],
        [{**TABLE, "sha256": SHA.upper()}],
        [{k: v for k, v in TABLE.items() if k != "name"}],
        [{**TABLE, "name": 5}],
        [TABLE, "figure1.csv"],
        [{**TABLE, "checks": [7]}],
        # review, exceptions, blocking rules
        [{**TABLE, "checks": [check("zero", "review")]}, FIGURE],
        [{**TABLE, "checks": [check("row_level", "review")]}, FIGURE],
        [{**TABLE, "checks": [check("threshold", "fail")], "exception": True}, FIGURE],
        [{**TABLE, "checks": [check("threshold", "fail")], "exception": "yes"}, FIGURE],
        [{**TABLE, "checks": [check("threshold", "fail")]}, FIGURE],
        [{**TABLE, "checks": [check("identifiers", "fail")], "exception": True}, FIGURE],
        [
            {**TABLE, "checks": [check("threshold", "fail"), check("pseudonyms", "fail")]},
            {**FIGURE, "exception": True},
        ],
        # the budget's counts on the files
        [{**TABLE, "rows": 51}, FIGURE],
        [{**TABLE, "cells": "20"}, FIGURE],
        [{k: v for k, v in TABLE.items() if k != "rows"}, FIGURE],
    ],
    "budget": [
        BUDGET,
        {**BUDGET, "rows_used": 91},
        {**BUDGET, "cells_used": 81},
        {**BUDGET, "rows_limit": -1},
        {k: v for k, v in BUDGET.items() if k != "cells_used"},
        MISSING,
        "plenty",
    ],
    "request/reviews": [
        [review("c-1", "approve"), review("c-2", "approve")],
        [],
        MISSING,
        [review("c-1", "approve")],
        [review("c-1", "approve"), review("c-1", "approve")],
        [review("c-1", "approve"), review("r-ada", "approve")],
        [review("c-1", "approve"), review("c-2", "approve"), review("r-ada", "approve")],
        [review("c-1", "approve"), review("c-2", "approve"), review("c-3", "reject")],
        [review("c-1", "approve"), review("c-2", "approve"), review("c-3", "maybe")],
        [review("c-1", "approve"), review("c-2", "approve"), {"reviewer": "c-3"}],
        [review("c-1", "approve"), review(7, "approve")],
        [review("c-1", "approve"), {"decision": "approve"}],
        [review("c-1", "approve"), review("c-2", "approve"), {"decision": "reject"}],
        [review("c-1", "approve"), review("c-2", "approve"), review("c-3", "approve")],
        "c-1,c-2",
    ],
}


def egress_cases() -> list[Case]:
    cases: list[Case] = [("egress: base", copy.deepcopy(EGRESS_BASE)), ("egress: empty", {})]
    for path, values in EGRESS_FIELDS.items():
        for value in values[1:]:
            cases.append((f"egress: {path}={value!r}", with_path(EGRESS_BASE, path, value)))
    cases.append(("egress: request=None", with_path(EGRESS_BASE, "request", None)))
    cases.append(("egress: request missing", with_path(EGRESS_BASE, "request", MISSING)))
    rng = random.Random(42)
    for number in range(60):
        document = copy.deepcopy(EGRESS_BASE)
        for path, values in EGRESS_FIELDS.items():
            if rng.random() < 0.25:
                document = with_path(document, path, rng.choice(values[1:]))
        cases.append((f"egress: random #{number}", document))
    return cases


def column(
    name: object, role: object, type: object = "string", pii: object = None, gen: object = None
) -> dict[str, object]:
    return {"name": name, "role": role, "type": type, "pii": pii, "generalise": gen}


IDENTIFIER = column("nhs_number", "identifier", "nhs_number", "nhs_number")
NAME = column("given_name", "drop", "string", "person")
BORN = column("date_of_birth", "quasi_identifier", "date", "date", "year")
POSTCODE = column("postcode", "quasi_identifier", "string", "postcode", "postcode_district")
SPECIALTY = column("specialty", "keep")
LETTER = column("letter_text", "free_text")
PATIENTS_REF: dict[str, object] = {"dataset": "patients", "pii": ["date", "nhs_number", "person"]}
INGEST_COLUMNS = [IDENTIFIER, BORN, POSTCODE, SPECIALTY, LETTER]

INGEST_BASE: dict[str, object] = {
    "spec": {
        "name": "letters",
        "origin": "hospital",
        "columns": INGEST_COLUMNS,
        "known_from": [PATIENTS_REF],
    },
    "file": {"header": [c["name"] for c in INGEST_COLUMNS]},
}

# Column lists: the header follows each (names that are text only) unless varied too.
INGEST_COLUMN_VARIANTS: list[list[object]] = [
    INGEST_COLUMNS,
    [],
    [IDENTIFIER, SPECIALTY],
    [IDENTIFIER, LETTER],
    [IDENTIFIER, NAME, LETTER],
    [*INGEST_COLUMNS, column("phone", "drop", "string", "phone")],
    [*INGEST_COLUMNS, column("born_month", "quasi_identifier", "date", "date", "month")],
    [*INGEST_COLUMNS, column("leak", "keep", "string", "person")],
    [*INGEST_COLUMNS, column("leak", "keep", "string", "postcode")],
    [*INGEST_COLUMNS, column("other_nhs", "keep", "nhs_number")],
    [*INGEST_COLUMNS, column("other_nhs", "drop", "nhs_number")],
    [*INGEST_COLUMNS, column("raw", "keep_raw")],
    [*INGEST_COLUMNS, column("raw", None)],
    [*INGEST_COLUMNS, {"name": "raw", "type": "string"}],
    [*INGEST_COLUMNS, column("nino", "drop", "string", "national_insurance")],
    [*INGEST_COLUMNS, column("nino", "drop", "string", 3)],
    [*INGEST_COLUMNS, column("dob", "quasi_identifier", "date", "date", "day")],
    [*INGEST_COLUMNS, column("dob", "quasi_identifier", "date", "date", None)],
    [*INGEST_COLUMNS, {"name": "dob", "role": "quasi_identifier", "type": "date"}],
    [*INGEST_COLUMNS, column("old_nhs", "identifier", "nhs_number", "nhs_number")],
    [column("nhs_number", "identifier", "string"), *INGEST_COLUMNS[1:]],
    [column("nhs_number", "identifier", None), *INGEST_COLUMNS[1:]],
    INGEST_COLUMNS[1:],
    [*INGEST_COLUMNS, column("specialty", "drop")],
    [*INGEST_COLUMNS, {"role": "drop"}],
    [*INGEST_COLUMNS, column(4, "drop")],
    [*INGEST_COLUMNS, "coroner"],
    [*INGEST_COLUMNS, None],
    "nhs_number",
]

INGEST_FIELDS: dict[str, list[object]] = {
    "spec/name": ["letters", "patients", "", None, MISSING, 7, ["letters"]],
    "spec/origin": ["hospital", "gp", "registry", "opt_out", "pharmacy", None, MISSING, ["gp"], 3],
    "spec/known_from": [
        [PATIENTS_REF],
        [],
        MISSING,
        None,
        "patients",
        [{"dataset": "deaths", "pii": ["nhs_number"]}],
        [{"dataset": "deaths", "pii": []}],
        [PATIENTS_REF, {"dataset": "pharmacy", "pii": None}],
        [PATIENTS_REF, {"dataset": "pharmacy"}],
        [{"dataset": 3, "pii": ["person"]}],
        [{"dataset": "", "pii": ["person"]}],
        [{"pii": ["person"]}],
        [PATIENTS_REF, "patients"],
        [{"dataset": "patients", "pii": "person"}],
        [{"dataset": "patients", "pii": [3, "person"]}],
        [{"dataset": "patients", "pii": [3]}],
    ],
    "file/header": [
        [c["name"] for c in INGEST_COLUMNS],
        [],
        MISSING,
        None,
        "nhs_number,given_name",
        [*(c["name"] for c in INGEST_COLUMNS), "coroner"],
        [c["name"] for c in INGEST_COLUMNS[:-1]],
        [*(c["name"] for c in INGEST_COLUMNS), "specialty"],
        [*(c["name"] for c in INGEST_COLUMNS), 3],
        [*(c["name"] for c in INGEST_COLUMNS), {"name": "x"}],
        [c["name"] for c in reversed(INGEST_COLUMNS)],
        ["NHS_NUMBER", *(c["name"] for c in INGEST_COLUMNS[1:])],
    ],
}

INGEST_WHOLE: dict[str, list[object]] = {
    "spec": [None, MISSING, "letters", []],
    "file": [None, MISSING, ["nhs_number"]],
}


def with_columns(document: dict[str, object], columns: object) -> dict[str, object]:
    """``document`` with the spec's columns replaced and the header following them."""
    changed = with_path(document, "spec/columns", columns)
    if isinstance(columns, list):
        names = [
            c["name"] for c in columns if isinstance(c, dict) and isinstance(c.get("name"), str)
        ]
        changed = with_path(changed, "file/header", names)
    return changed


def ingest_cases() -> list[Case]:
    cases: list[Case] = [("ingest: base", copy.deepcopy(INGEST_BASE)), ("ingest: empty", {})]
    for name in shipped_datasets():
        spec = load_spec(name)
        document = ingest_policy_input(spec, list(spec.column_names))
        cases.append((f"ingest: shipped {name}", document))
        cases.append(
            (
                f"ingest: shipped {name}, header short of its last column",
                with_path(document, "file/header", list(spec.column_names)[:-1]),
            )
        )
    for number, columns in enumerate(INGEST_COLUMN_VARIANTS[1:]):
        cases.append((f"ingest: columns #{number}", with_columns(INGEST_BASE, columns)))
    for path, values in INGEST_FIELDS.items():
        for value in values[1:]:
            cases.append((f"ingest: {path}={value!r}", with_path(INGEST_BASE, path, value)))
    for path, values in INGEST_WHOLE.items():
        for value in values:
            cases.append((f"ingest: {path}={value!r}", with_path(INGEST_BASE, path, value)))
    # free text cleared of: the NHS number alone, or the patient's own names (no known_from)
    for label, columns in (
        ("bare", [IDENTIFIER, SPECIALTY, LETTER]),
        ("named", [IDENTIFIER, NAME, LETTER]),
    ):
        for number, known in enumerate(INGEST_FIELDS["spec/known_from"]):
            document = with_path(with_columns(INGEST_BASE, columns), "spec/known_from", known)
            cases.append((f"ingest: {label} letters, known_from #{number}", document))
    rng = random.Random(20251124)
    for number in range(80):
        document = copy.deepcopy(INGEST_BASE)
        if rng.random() < 0.3:
            document = with_columns(document, rng.choice(INGEST_COLUMN_VARIANTS))
        for path, values in INGEST_FIELDS.items():
            if rng.random() < 0.15:
                document = with_path(document, path, rng.choice(values))
        for path, values in INGEST_WHOLE.items():
            if rng.random() < 0.03:
                document = with_path(document, path, rng.choice(values))
        cases.append((f"ingest: random #{number}", document))
    return cases


def opa_decision(
    opa: Path, policy_dir: Path, package: str, document: dict[str, object]
) -> tuple[bool, list[str]]:
    result = run_opa(
        opa,
        "eval",
        "--format",
        "json",
        "--strict-builtin-errors",
        "-d",
        str(policy_dir),
        "-I",
        f"data.{package}",
        stdin=json.dumps(document),
    )
    assert result.returncode == 0, result.stderr
    value = json.loads(result.stdout)["result"][0]["expressions"][0]["value"]
    allow, deny = value["allow"], value["deny"]
    assert isinstance(allow, bool)
    assert isinstance(deny, list)
    return allow, sorted(deny)


@pytest.fixture(scope="module")
def engine() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(default_policy_dir())


def replay(
    opa: Path, engine: RegoEmbeddedEngine, package: str, cases: list[Case]
) -> tuple[list[str], int]:
    """Disagreements between the engines (by case name), and how many cases allowed."""

    def compare(case: Case) -> tuple[str | None, bool]:
        name, document = case
        allow, deny = opa_decision(opa, engine.policy_dir, package, document)
        if allow == bool(deny):
            return f"{name}: OPA gives allow={allow} with deny={deny}", allow
        decision = engine.decide(package, document)
        if decision.allow != allow or list(decision.reasons) != deny:
            return f"{name}: OPA allow={allow} {deny}; regopy {decision}", allow
        return None, allow

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compare, cases))
    problems = [problem for problem, _ in results if problem is not None]
    return problems, sum(allow for _, allow in results)


CORPORA: dict[str, Callable[[], list[Case]]] = {
    ACCESS: access_cases,
    EGRESS: egress_cases,
    INGEST: ingest_cases,
}


@pytest.mark.policy
@pytest.mark.parametrize("package", [ACCESS, EGRESS, INGEST])
def test_regopy_and_opa_agree_on_the_corpus(
    opa: Path, engine: RegoEmbeddedEngine, package: str
) -> None:
    cases = CORPORA[package]()
    assert len(cases) >= 100
    assert len({name for name, _ in cases}) == len(cases)
    problems, allowed = replay(opa, engine, package, cases)
    assert problems == []
    # the corpus means something only if it holds both answers
    assert 5 <= allowed <= len(cases) - 50


@pytest.mark.policy
def test_regopy_and_opa_agree_on_the_canaries(opa: Path, engine: RegoEmbeddedEngine) -> None:
    for package in (ACCESS, EGRESS, INGEST):
        cases = [
            (canary.name, dict(canary.input)) for canary in CANARIES if canary.package == package
        ]
        problems, _ = replay(opa, engine, package, cases)
        assert problems == [], package


@pytest.mark.policy
def test_the_corpus_catches_a_divergence(opa: Path, tmp_path: Path) -> None:
    """``not f(x)`` with ``x`` undefined is true in regopy but undefined in OPA: a policy
    written that way answers differently, and the replay must say so."""
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES, folder)
    source = (folder / "access.rego").read_text(encoding="utf-8")
    diverging = source.replace(
        'not is_string(object.get(input, "action", null))', "not is_string(input.action)"
    )
    assert diverging != source
    (folder / "access.rego").write_text(diverging, encoding="utf-8")
    cases = [
        ("access: empty", {}),
        ("access: no action", with_path(ACCESS_BASE, "action", MISSING)),
        ("access: base", copy.deepcopy(ACCESS_BASE)),
    ]
    problems, _ = replay(opa, RegoEmbeddedEngine(folder), ACCESS, cases)
    assert [problem.split(":")[1] for problem in problems] == [" empty", " no action"]
