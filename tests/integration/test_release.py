"""The airlock over a real control database and the embedded policy engine."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sde.adapters.sql import ControlPlane
from sde.domain.releases import Status, Vote
from sde.errors import InputError, PolicyDenied, StateError
from sde.services.home import Home, init_home
from sde.services.release import EgressLimits, FileDecision, OutputFile, ReleaseService
from sde.services.wiring import control_plane, policy_engine, release_service
from tests.factories import airlock_project

pytestmark = [pytest.mark.sql, pytest.mark.policy]

SAFE = b"sex,n\nF,120\nM,98\n"
SMALL = b"sex,n\nF,120\nM,3\n"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / "h")


@pytest.fixture
def store(home: Home) -> Iterator[ControlPlane]:
    with control_plane(home) as plane:
        airlock_project(plane, policy_engine(home), alice_checks=True)
        yield plane


@pytest.fixture
def airlock(home: Home, store: ControlPlane) -> ReleaseService:
    return release_service(home, store, policy_engine(home))


def approved(airlock: ReleaseService, content: bytes = SAFE, **file: object) -> str:
    """A request approved by two checkers: released at once when the policy allows."""
    req = airlock.request(
        "diabetes",
        "alice",
        [OutputFile("t.csv", content, **file)],  # type: ignore[arg-type]
        title="t",
    )
    assert airlock.review(req.id, "carol", Vote.APPROVE) is Status.IN_REVIEW
    airlock.review(req.id, "dev", Vote.APPROVE)
    return req.id


def test_safe_table_released_with_record_and_checksum(home: Home, airlock: ReleaseService) -> None:
    request_id = approved(airlock)
    target = home.egress / request_id
    assert (target / "t.csv").read_bytes() == SAFE
    record = json.loads((target / "sde-release.json").read_text())
    assert record["format"] == "sde-release/1"
    assert record["files"][0]["sha256"] == hashlib.sha256(SAFE).hexdigest()
    assert {r["reviewer"] for r in record["reviews"]} == {"carol", "dev"}
    assert all(c["status"] in ("pass",) for c in record["files"][0]["checks"])
    assert record["rules"]["risk_appetite"]["min_cell_count"] == 10
    assert record["reviews"][0]["files"] == {"t.csv": {"decision": "approve", "comment": None}}
    acro = json.loads((target / "results.json").read_text())
    assert set(acro["results"]) == {"t.csv"}
    assert sorted(p.name for p in target.iterdir()) == [
        "checksums",
        "results.json",
        "sde-release.json",
        "t.csv",
    ]
    assert (target / "checksums" / "t.csv.txt").read_text() == hashlib.sha256(SAFE).hexdigest()


def test_release_is_audited_and_chain_verifies(
    airlock: ReleaseService, store: ControlPlane
) -> None:
    request_id = approved(airlock)
    actions = [e.action for e in store.audit.events() if e.subject == f"release:{request_id}"]
    assert actions[0] == "release.create"
    assert actions[-1] == "release.publish"
    assert "release.approved" in actions
    assert store.audit.verify().intact
    assert store.get_release_request(request_id).status is Status.RELEASED


def test_small_cells_blocked_even_with_two_approvals(
    home: Home, airlock: ReleaseService, store: ControlPlane
) -> None:
    request_id = approved(airlock, SMALL)
    assert store.get_release_request(request_id).status is Status.APPROVED
    with pytest.raises(PolicyDenied, match="min_cell_count"):
        airlock.publish(request_id, "olu")
    assert not (home.egress / request_id).exists()
    refusals = [e for e in store.audit.events() if e.action == "release.publish_refused"]
    assert len(refusals) == 2  # once when the second approval came, once now
    view = airlock.view(request_id, "alice")
    assert any("min_cell_count" in r and "exception" in r for r in view.blocked_reasons)


def test_exception_releases_a_small_cell_with_two_approvals(
    home: Home, airlock: ReleaseService, store: ControlPlane
) -> None:
    request_id = approved(airlock, SMALL, exception="the cell is published by ONS already")
    assert store.get_release_request(request_id).status is Status.RELEASED
    record = json.loads((home.egress / request_id / "sde-release.json").read_text())
    assert record["files"][0]["exception"] == "the cell is published by ONS already"
    assert record["files"][0]["status"] == "fail"


def test_no_exception_releases_row_level_data(
    home: Home, airlock: ReleaseService, store: ControlPlane
) -> None:
    rows = b"sex,n\n" + b"".join(b"F,%d\n" % (20 + i) for i in range(600))
    request_id = approved(airlock, rows, exception="I need every row")
    assert store.get_release_request(request_id).status is Status.APPROVED
    with pytest.raises(PolicyDenied, match="row_level"):
        airlock.publish(request_id, "olu")
    assert not (home.egress / request_id).exists()


def test_zero_cell_needs_review_not_exception(home: Home, airlock: ReleaseService) -> None:
    [check] = airlock.preview("diabetes", "alice", [OutputFile("t.csv", b"sex,n\nF,120\nM,0\n")])
    assert check.status == "review"
    assert {c.name: c.status.value for c in check.checks}["zeros"] == "review"
    request_id = approved(airlock, b"sex,n\nF,120\nM,0\n")
    assert (home.egress / request_id).exists()


def test_one_approval_is_not_enough(home: Home, airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    airlock.review(req.id, "carol", Vote.APPROVE)
    with pytest.raises(PolicyDenied):
        airlock.publish(req.id, "olu")
    assert not any(home.egress.iterdir())


def test_author_cannot_review_own_request_even_as_checker(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    with pytest.raises(PolicyDenied, match="own requests"):
        airlock.review(req.id, "alice", Vote.APPROVE)
    view = airlock.view(req.id, "alice")
    assert not view.can_review
    assert view.why_cannot_review == "authors never review their own requests"


def test_researchers_cannot_review_or_view_others_requests(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    with pytest.raises(PolicyDenied, match="not an output checker"):
        airlock.review(req.id, "mallory", Vote.APPROVE)
    with pytest.raises(PolicyDenied, match="only output checkers and the author"):
        airlock.view(req.id, "mallory")
    with pytest.raises(PolicyDenied):
        airlock.file_content(req.id, "t.csv", "mallory")
    assert airlock.queue("mallory") == []
    assert [i.id for i in airlock.queue("carol")] == [req.id]


def test_a_checker_votes_once(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    airlock.review(req.id, "carol", Vote.APPROVE)
    with pytest.raises(StateError):
        airlock.review(req.id, "carol", Vote.APPROVE)


def test_reviews_are_blinded_until_the_checker_votes(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    airlock.review(req.id, "carol", {"t.csv": FileDecision(Vote.APPROVE, "fine")})
    before = airlock.view(req.id, "dev")
    assert before.other_reviews is None
    assert before.reviews_received == 1
    assert before.can_review
    assert airlock.view(req.id, "alice").other_reviews is None  # still in review
    after = airlock.view(req.id, "carol")
    assert after.my_review is not None
    assert after.my_review.files[0].comment == "fine"
    assert after.other_reviews == ()
    assert not after.can_review


def test_review_needs_a_decision_on_every_file(airlock: ReleaseService) -> None:
    req = airlock.request(
        "diabetes", "alice", [OutputFile("a.csv", SAFE), OutputFile("b.csv", SAFE)], title="t"
    )
    with pytest.raises(InputError, match=r"missing: b\.csv"):
        airlock.review(req.id, "carol", {"a.csv": FileDecision(Vote.APPROVE)})
    with pytest.raises(InputError, match="no file"):
        airlock.review(
            req.id,
            "carol",
            {n: FileDecision(Vote.APPROVE) for n in ("a.csv", "b.csv", "c.csv")},
        )


def test_request_changes_on_one_file_returns_and_resubmit_resets_reviews(
    airlock: ReleaseService, store: ControlPlane
) -> None:
    req = airlock.request(
        "diabetes", "alice", [OutputFile("a.csv", SAFE), OutputFile("b.csv", SMALL)], title="t"
    )
    airlock.review(
        req.id,
        "carol",
        {"a.csv": FileDecision(Vote.APPROVE)}
        | {"b.csv": FileDecision(Vote.RETURN, "suppress the small cell")},
    )
    assert store.get_release_request(req.id).status is Status.RETURNED
    view = airlock.view(req.id, "alice")
    assert any("suppress the small cell" in r for r in view.blocked_reasons)
    with pytest.raises(PolicyDenied, match="only the author"):
        airlock.resubmit(req.id, "carol", [OutputFile("b.csv", SAFE)])
    again = airlock.resubmit(
        req.id, "alice", [OutputFile("b.csv", SAFE)], comment="merged the small cell"
    )
    assert again.status is Status.SUBMITTED
    assert again.comment == "merged the small cell"
    assert store.list_reviews(req.id) == []
    assert {f.name: f.sha256 for f in store.list_release_files(req.id)}["b.csv"] == (
        hashlib.sha256(SAFE).hexdigest()
    )
    airlock.review(req.id, "carol", Vote.APPROVE)
    assert airlock.review(req.id, "dev", Vote.APPROVE) is Status.RELEASED


def test_withdraw_by_the_author_only(airlock: ReleaseService, store: ControlPlane) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    with pytest.raises(PolicyDenied):
        airlock.withdraw(req.id, "carol")
    airlock.withdraw(req.id, "alice")
    assert store.get_release_request(req.id).status is Status.WITHDRAWN
    with pytest.raises(StateError):
        airlock.review(req.id, "carol", Vote.APPROVE)


def test_rejected_request_is_never_released(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    airlock.review(req.id, "carol", Vote.APPROVE)
    assert airlock.review(req.id, "dev", Vote.REJECT) is Status.REJECTED
    with pytest.raises(PolicyDenied):
        airlock.publish(req.id, "olu")


def test_non_member_cannot_request(airlock: ReleaseService) -> None:
    with pytest.raises(PolicyDenied, match="member"):
        airlock.request("diabetes", "mallory", [OutputFile("t.csv", SAFE)], title="t")


def test_released_twice_refused(airlock: ReleaseService) -> None:
    request_id = approved(airlock)
    with pytest.raises(PolicyDenied):
        airlock.publish(request_id, "olu")


def test_differencing_against_an_earlier_request(airlock: ReleaseService) -> None:
    approved(airlock, b"region,n\nNorth,47\nSouth,120\n")
    [check] = airlock.preview(
        "diabetes", "alice", [OutputFile("adults.csv", b"region,n\nNorth,45\nSouth,120\n")]
    )
    differencing = {c.name: c for c in check.checks}["differencing"]
    assert differencing.status.value == "fail"
    # No count in the message (as a number of its own: request ids are hex and may hold
    # the same digits).
    assert not re.search(r"\b4[57]\b", differencing.message)
    [same] = airlock.preview(
        "diabetes", "alice", [OutputFile("again.csv", b"region,n\nNorth,47\nSouth,120\n")]
    )
    assert {c.name: c.status.value for c in same.checks}["differencing"] == "pass"


def test_egress_budget_stops_the_release_that_would_exceed_it(
    home: Home, store: ControlPlane
) -> None:
    airlock = ReleaseService(
        store,
        policy_engine(home),
        egress_dir=home.egress,
        min_cell_count=10,
        approvals_required=2,
        budget=EgressLimits(rows=3, cells=100),
    )
    first = approved(airlock)  # 2 rows
    assert store.get_release_request(first).status is Status.RELEASED
    assert airlock.budget_used("diabetes") == (2, 4)
    second = approved(airlock, b"age,n\nyoung,50\nold,60\n")
    assert store.get_release_request(second).status is Status.APPROVED
    with pytest.raises(PolicyDenied, match="egress budget"):
        airlock.publish(second, "olu")


def test_stats_output_metadata_is_checked_under_the_airlock_appetite(
    airlock: ReleaseService,
) -> None:
    import pandas as pd

    from sde.workspace import stats

    data = pd.DataFrame({"sex": ["F"] * 30 + ["M"] * 3, "age": ["old"] * 20 + ["young"] * 13})
    out = stats.crosstab(data, "sex", "age")
    content = out.table.to_csv().encode()
    [check] = airlock.preview(
        "diabetes",
        "alice",
        [OutputFile("x.csv", content, kind="crosstab", metadata=out.to_json())],
    )
    statuses = {c.name: c.status.value for c in check.checks}
    assert statuses["sdc_metadata"] == "pass"
    assert statuses["threshold"] == "fail"
    [bare] = airlock.preview("diabetes", "alice", [OutputFile("x.csv", content, kind="crosstab")])
    assert {c.name: c.status.value for c in bare.checks}["sdc_metadata"] == "fail"
    assert bare.blocking == ("sdc_metadata",)


def test_heatmap_marks_the_failing_cells(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SMALL)], title="t")
    [file] = airlock.view(req.id, "carol").files
    assert file.grid is not None
    cells = {(r, c): cell for r, row in enumerate(file.grid) for c, cell in enumerate(row)}
    assert cells[(2, 1)].rules == ("threshold",)
    assert cells[(2, 1)].status == "fail"
    assert cells[(1, 1)].status == "pass"
    assert file.status == "fail"


@pytest.mark.parametrize(
    ("name", "content", "check"),
    [
        ("../t.csv", SAFE, "file_type"),
        ("t.xlsx", SAFE, "file_type"),
        ("t.csv", b"\xff\xfe", "readable"),
        ("t.csv", b"sex,mean_age\nF,41\n", "count_columns"),
    ],
)
def test_automatic_checks_fail_closed(
    airlock: ReleaseService, name: str, content: bytes, check: str
) -> None:
    [result] = airlock.preview("diabetes", "alice", [OutputFile(name, content)])
    assert check in result.blocking
    assert result.status == "fail"


def test_blocking_rules_are_the_same_in_python_and_rego() -> None:

    from sde.domain.sdc.airlock import BLOCKING

    source = (Path(__file__).parents[2] / "policies" / "egress.rego").read_text()
    block = re.search(r"blocking_rules := \{(.*?)\}", source, re.S)
    assert block is not None
    assert set(re.findall(r'"([a-z_]+)"', block.group(1))) == BLOCKING


def test_stats_metadata_that_hides_small_cells_fails_closed(airlock: ReleaseService) -> None:
    import pandas as pd

    from sde.workspace import stats

    data = pd.DataFrame({"sex": ["F"] * 30 + ["M"] * 3, "age": ["old"] * 20 + ["young"] * 13})
    out = stats.crosstab(data, "sex", "age")
    forged = {**out.to_json(), "rules": {}, "cells": [], "status": "pass"}
    [check] = airlock.preview(
        "diabetes",
        "alice",
        [OutputFile("x.csv", out.table.to_csv().encode(), kind="crosstab", metadata=forged)],
    )
    assert "sdc_metadata" in check.blocking
    honest = airlock.preview(
        "diabetes",
        "alice",
        [OutputFile("x.csv", out.table.to_csv().encode(), kind="crosstab", metadata=out.to_json())],
    )
    assert "sdc_metadata" not in honest[0].blocking


def test_heatmap_marks_the_cells_differencing_flagged(airlock: ReleaseService) -> None:
    approved(airlock, b"region,n\nNorth,47\nSouth,120\n")
    req = airlock.request(
        "diabetes",
        "alice",
        [OutputFile("adults.csv", b"region,n\nNorth,45\nSouth,120\n")],
        title="a",
    )
    [file] = airlock.view(req.id, "carol").files
    assert file.grid is not None
    assert file.grid[1][1].rules == ("differencing",)
    assert file.grid[1][1].status == "fail"
    assert file.grid[2][1].rules == ()


def test_a_suppressed_table_passes_the_airlock(airlock: ReleaseService) -> None:
    import pandas as pd

    from sde.workspace import stats

    data = pd.DataFrame(
        {
            "sex": ["F"] * 30 + ["M"] * 3 + ["M"] * 25 + ["F"] * 12,
            "age": ["old"] * 20 + ["young"] * 13 + ["old"] * 25 + ["young"] * 12,
        }
    )
    raw = stats.crosstab(data, "sex", "age")
    safe = raw.suppressed()
    checks = {}
    for name, out in (("raw.csv", raw), ("safe.csv", safe)):
        [check] = airlock.preview(
            "diabetes",
            "alice",
            [
                OutputFile(
                    name, out.table.to_csv().encode(), kind="crosstab", metadata=out.to_json()
                )
            ],
        )
        checks[name] = {c.name: c.status.value for c in check.checks}
    assert checks["raw.csv"]["threshold"] == "fail"
    assert "threshold" not in checks["safe.csv"]
    assert checks["safe.csv"]["suppressed"] == "pass"
    assert checks["safe.csv"]["sdc_metadata"] == "pass"
