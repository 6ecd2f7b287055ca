"""The pure side of policy decisions: input builders, Decision, canaries."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from sde.domain import policy
from sde.domain.policy import (
    CANARIES,
    Canary,
    Decision,
    EgressBudget,
    IngestColumnFacts,
    ReleaseFileFacts,
    canary_problem,
    make_access_input,
    make_egress_input,
    make_ingest_input,
)
from sde.errors import InputError, PolicyDenied

SHA = "ab" * 32


def access(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "action": "read_dataset",
        "today": dt.date(2025, 6, 1),
        "person_id": "r-ada",
        "project_id": "prj-1",
        "accredited_until": dt.date(2025, 12, 31),
        "project_status": "approved",
        "members": ["r-bob", "r-ada", "r-ada"],
        "start_date": "2025-01-01",
        "end_date": None,
        "approved_datasets": {"events": ("pid", "code"), "admissions": ["pid"]},
        "dataset": "events",
        "columns": ["code", "pid"],
    }
    values.update(changes)
    return make_access_input(**values)  # type: ignore[arg-type]


def test_access_input_is_the_documented_document() -> None:
    assert access() == {
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
            "end_date": None,
            "datasets": {"admissions": ["pid"], "events": ["pid", "code"]},
        },
        "request": {"dataset": "events", "columns": ["code", "pid"]},
    }


def test_access_input_is_plain_json() -> None:
    document = access(banned_until=dt.date(2030, 1, 1))
    assert json.loads(json.dumps(document)) == document


def test_unknown_person_and_project_are_null() -> None:
    document = access(person_id=None, project_id=None)
    assert document["person"] is None
    assert document["project"] is None


def test_operator_role_and_defaults() -> None:
    document = make_access_input(
        action="build_extract",
        today=dt.date(2025, 6, 1),
        person_id="op-1",
        project_id="prj-1",
        role="operator",
    )
    assert document["person"] == {
        "id": "op-1",
        "role": "operator",
        "accredited_until": None,
        "banned_until": None,
    }
    assert document["project"] == {
        "id": "prj-1",
        "status": None,
        "members": [],
        "start_date": None,
        "end_date": None,
        "datasets": {},
    }
    assert document["request"] == {"dataset": None, "columns": []}


def test_datetimes_become_dates() -> None:
    moment = dt.datetime(2025, 6, 1, 23, 59, tzinfo=dt.UTC)
    assert access(today=moment)["today"] == "2025-06-01"


@pytest.mark.parametrize(
    "bad", ["2025-13-01", "01/06/2025", "2025-06-01T00:00:00Z", "20250601", 20250601]
)
def test_unreadable_dates_are_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(InputError, match="accredited_until is not a date") as caught:
        access(accredited_until=bad)
    assert str(bad) not in str(caught.value)


def test_a_single_string_is_not_a_list_of_columns() -> None:
    with pytest.raises(InputError, match="columns must be a list"):
        access(columns="pid")
    with pytest.raises(InputError, match="members must be a list"):
        access(members="r-ada")


def test_non_text_names_are_refused() -> None:
    with pytest.raises(InputError, match="columns must be text"):
        access(columns=["pid", 3])
    with pytest.raises(InputError, match="action must be text"):
        access(action=None)


def test_access_input_copies_what_it_is_given() -> None:
    columns = ["pid"]
    approved = {"events": ["pid"]}
    document = access(columns=columns, approved_datasets=approved)
    columns.append("nhs_number")
    approved["events"].append("nhs_number")
    assert document["request"] == {"dataset": "events", "columns": ["pid"]}
    project = document["project"]
    assert isinstance(project, dict)
    assert project["datasets"] == {"events": ["pid"]}


def egress(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "request_id": "rr-1",
        "author": "r-ada",
        "status": "approved",
        "files": [
            ReleaseFileFacts(
                "t1.csv",
                SHA,
                {"small_numbers": "pass", "dominance": "fail"},
                exception=True,
                rows=3,
                cells=6,
            )
        ],
        "reviews": [("c-1", "approve"), ("c-2", "reject")],
        "project_status": "suspended",
        "budget": EgressBudget(rows_limit=100, cells_limit=200, rows_used=7, cells_used=9),
    }
    values.update(changes)
    return make_egress_input(**values)  # type: ignore[arg-type]


def test_egress_input_is_the_documented_document() -> None:
    assert egress() == {
        "budget": {"rows_limit": 100, "cells_limit": 200, "rows_used": 7, "cells_used": 9},
        "settings": {},
        "request": {
            "id": "rr-1",
            "author": "r-ada",
            "status": "approved",
            "project_status": "suspended",
            "files": [
                {
                    "name": "t1.csv",
                    "sha256": SHA,
                    "checks": [
                        {"name": "dominance", "status": "fail"},
                        {"name": "small_numbers", "status": "pass"},
                    ],
                    "exception": True,
                    "rows": 3,
                    "cells": 6,
                }
            ],
            "reviews": [
                {"reviewer": "c-1", "decision": "approve"},
                {"reviewer": "c-2", "decision": "reject"},
            ],
        },
    }


def test_approvals_required_is_passed_on_even_when_below_one() -> None:
    assert egress(approvals_required=3)["settings"] == {"approvals_required": 3}
    assert egress(approvals_required=0)["settings"] == {"approvals_required": 0}


@pytest.mark.parametrize("bad", [True, 1.5, "2"])
def test_approvals_required_must_be_whole(bad: object) -> None:
    with pytest.raises(InputError, match="approvals_required"):
        egress(approvals_required=bad)


def test_missing_checksum_and_author_are_null() -> None:
    document = egress(author=None, files=[ReleaseFileFacts("t1.csv", None)])
    request = document["request"]
    assert isinstance(request, dict)
    assert request["author"] is None
    assert egress(project_status=None)["request"]["project_status"] is None  # type: ignore[index]
    assert request["files"] == [
        {"name": "t1.csv", "sha256": None, "checks": [], "exception": False}
    ]
    assert "budget" not in egress(budget=None)


@pytest.mark.parametrize("bad", [-1, True, 1.5, "3"])
def test_budget_counts_must_be_whole_and_not_negative(bad: object) -> None:
    with pytest.raises(InputError, match="rows_used"):
        egress(budget=EgressBudget(rows_limit=1, cells_limit=1, rows_used=bad, cells_used=0))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cells"):
        egress(files=[ReleaseFileFacts("t.csv", SHA, cells=bad)])  # type: ignore[arg-type]


def test_egress_input_refuses_malformed_parts() -> None:
    with pytest.raises(InputError, match="ReleaseFileFacts"):
        egress(files=[{"name": "t1.csv"}])
    with pytest.raises(InputError, match="pair"):
        egress(reviews=[("c-1", "approve", "extra")])
    with pytest.raises(InputError, match="reviewer must be text"):
        egress(reviews=[(None, "approve")])


LETTER_COLUMNS = (
    IngestColumnFacts("nhs_number", "identifier", "nhs_number", "nhs_number"),
    IngestColumnFacts("date_of_birth", "quasi_identifier", "date", "date", "year"),
    IngestColumnFacts("letter_text", "free_text", "string"),
)


def ingest(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "dataset": "clinic_letters",
        "origin": "hospital",
        "columns": LETTER_COLUMNS,
        "header": ["letter_text", "nhs_number", "date_of_birth", "letter_text"],
        "known_from": {"patients": ["person", "date", "person"], "pharmacy": None},
    }
    values.update(changes)
    return make_ingest_input(**values)  # type: ignore[arg-type]


def test_ingest_input_is_the_documented_document() -> None:
    # columns and header keep their order (header repeats too: the policy refuses them);
    # each known_from dataset's kinds are sorted and distinct, None when it has no spec
    assert ingest() == {
        "spec": {
            "name": "clinic_letters",
            "origin": "hospital",
            "columns": [
                {
                    "name": "nhs_number",
                    "role": "identifier",
                    "type": "nhs_number",
                    "pii": "nhs_number",
                    "generalise": None,
                },
                {
                    "name": "date_of_birth",
                    "role": "quasi_identifier",
                    "type": "date",
                    "pii": "date",
                    "generalise": "year",
                },
                {
                    "name": "letter_text",
                    "role": "free_text",
                    "type": "string",
                    "pii": None,
                    "generalise": None,
                },
            ],
            "known_from": [
                {"dataset": "patients", "pii": ["date", "person"]},
                {"dataset": "pharmacy", "pii": None},
            ],
        },
        "file": {"header": ["letter_text", "nhs_number", "date_of_birth", "letter_text"]},
    }


def test_ingest_input_is_plain_json_and_defaults() -> None:
    document = ingest(dataset=None, origin=None, known_from=None)
    assert json.loads(json.dumps(document)) == document
    spec = document["spec"]
    assert isinstance(spec, dict)
    assert (spec["name"], spec["origin"], spec["known_from"]) == (None, None, [])


def test_ingest_input_copies_what_it_is_given() -> None:
    header = ["nhs_number"]
    kinds = ["person"]
    columns = [LETTER_COLUMNS[0]]
    document = ingest(header=header, known_from={"patients": kinds}, columns=columns)
    header.append("given_name")
    kinds.append("phone")
    columns.append(LETTER_COLUMNS[1])
    assert document["file"] == {"header": ["nhs_number"]}
    spec = document["spec"]
    assert isinstance(spec, dict)
    assert spec["known_from"] == [{"dataset": "patients", "pii": ["person"]}]
    assert [c["name"] for c in spec["columns"]] == ["nhs_number"]


def test_ingest_input_refuses_malformed_parts() -> None:
    with pytest.raises(InputError, match="IngestColumnFacts"):
        ingest(columns=[{"name": "nhs_number", "role": "identifier"}])
    with pytest.raises(InputError, match="header must be a list"):
        ingest(header="nhs_number,letter_text")
    with pytest.raises(InputError, match="header must be text"):
        ingest(header=["nhs_number", 3])
    with pytest.raises(InputError, match="role must be text"):
        ingest(columns=[IngestColumnFacts("x", None, "string")])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="pii must be text"):
        ingest(columns=[IngestColumnFacts("x", "drop", "string", 3)])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="known_from must map"):
        ingest(known_from=["patients"])
    with pytest.raises(InputError, match="pii of patients must be a list"):
        ingest(known_from={"patients": "person"})
    with pytest.raises(InputError, match="dataset must be text"):
        ingest(dataset=7)


def test_decision_validates_itself() -> None:
    assert Decision(allow=True).reasons == ()
    with pytest.raises(ValueError, match="no refusal reasons"):
        Decision(allow=True, reasons=("x",))
    with pytest.raises(TypeError):
        Decision(allow=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Decision(allow=False, reasons=["x"])  # type: ignore[arg-type]


def test_decision_require() -> None:
    Decision(allow=True).require("open workspace")
    with pytest.raises(PolicyDenied) as caught:
        Decision(allow=False, reasons=("person r-ada is banned until 2030-01-01",)).require(
            "open workspace"
        )
    assert caught.value.reasons == ["person r-ada is banned until 2030-01-01"]
    assert str(caught.value) == "open workspace refused: person r-ada is banned until 2030-01-01"


def test_engine_error_decision() -> None:
    decision = Decision.engine_error("sde.access: evaluation failed")
    assert not decision.allow
    assert decision.is_engine_error
    assert decision.reasons == ("policy engine error: sde.access: evaluation failed",)
    assert not Decision(allow=False, reasons=("project prj-1 ended",)).is_engine_error


def test_canary_problem() -> None:
    allow = Canary("ok", policy.ACCESS, {}, allow=True)
    refuse = Canary("no", policy.ACCESS, {}, allow=False, reason="banned")
    assert canary_problem(allow, Decision(allow=True)) is None
    assert canary_problem(allow, Decision(allow=False, reasons=("x",))) is not None
    assert canary_problem(refuse, Decision(allow=True)) == "expected refusal, got allow"
    assert canary_problem(refuse, Decision(allow=False, reasons=("person p is banned",))) is None
    assert canary_problem(refuse, Decision(allow=False, reasons=("project ended",))) is not None
    assert canary_problem(refuse, Decision.engine_error("boom")) is not None


def test_canaries_cover_both_answers_for_each_package() -> None:
    for package in (policy.ACCESS, policy.EGRESS, policy.PROJECT, policy.INGEST):
        mine = [canary for canary in CANARIES if canary.package == package]
        assert any(canary.allow for canary in mine), package
        refusals = [canary for canary in mine if not canary.allow]
        assert len(refusals) >= 8, package
        assert all(canary.reason for canary in refusals), package
    names = [(canary.package, canary.name) for canary in CANARIES]
    assert len(names) == len(set(names))


def test_canary_inputs_are_plain_json() -> None:
    for canary in CANARIES:
        assert json.loads(json.dumps(canary.input)) == canary.input, canary.name
