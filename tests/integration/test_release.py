"""The airlock over a real control database and the embedded policy engine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sde.adapters.sql import ControlPlane
from sde.domain.releases import Status, Vote
from sde.errors import PolicyDenied, StateError
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.release import OutputFile, ReleaseService, check_output
from sde.services.wiring import control_plane, policy_engine, release_service
from tests.factories import application, approve_through_board

pytestmark = [pytest.mark.sql, pytest.mark.policy]

SAFE = b"sex,n\nF,120\nM,98\n"
SMALL = b"sex,n\nF,120\nM,3\n"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return init_home(tmp_path / "h")


@pytest.fixture
def store(home: Home) -> Iterator[ControlPlane]:
    with control_plane(home) as plane:
        projects = ProjectService(plane)
        projects.add_person("olu", "olu", roles=["operator"], organisation="NHS")
        projects.add_person("olu", "bea", roles=["board_member"], organisation="Lay")
        projects.add_person(
            "olu", "alice", roles=["researcher", "output_checker"], organisation="Uni"
        )
        projects.add_person("olu", "mallory", roles=["researcher"], organisation="Uni")
        for checker in ("carol", "dev"):
            projects.add_person("olu", checker, roles=["output_checker"], organisation="NHS")
        projects.create_project(
            "olu", application("diabetes", {"patients": ["sex"]}, sponsor="Uni")
        )
        projects.add_member("olu", "diabetes", "alice")
        approve_through_board(plane, policy_engine(home), "diabetes", decided_by="bea")
        yield plane


@pytest.fixture
def airlock(home: Home, store: ControlPlane) -> ReleaseService:
    return release_service(home, store, policy_engine(home))


def approved(airlock: ReleaseService, content: bytes = SAFE) -> str:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", content)], title="t")
    assert airlock.review(req.id, "carol", Vote.APPROVE) is Status.IN_REVIEW
    assert airlock.review(req.id, "dev", Vote.APPROVE) is Status.APPROVED
    return req.id


def test_safe_table_released_with_record_and_checksum(home: Home, airlock: ReleaseService) -> None:
    request_id = approved(airlock)
    target = airlock.publish(request_id, "olu")
    assert (target / "t.csv").read_bytes() == SAFE
    record = json.loads((target / "release.json").read_text())
    assert record["files"][0]["sha256"] == hashlib.sha256(SAFE).hexdigest()
    assert {r["reviewer"] for r in record["reviews"]} == {"carol", "dev"}
    assert all(c["status"] == "pass" for c in record["files"][0]["checks"])
    assert target == home.egress / request_id


def test_release_is_audited_and_chain_verifies(
    airlock: ReleaseService, store: ControlPlane
) -> None:
    request_id = approved(airlock)
    airlock.publish(request_id, "olu")
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
    with pytest.raises(PolicyDenied, match="min_cell_count"):
        airlock.publish(request_id, "olu")
    assert not (home.egress / request_id).exists()
    assert store.get_release_request(request_id).status is Status.APPROVED
    refusals = [e for e in store.audit.events() if e.action == "release.publish_refused"]
    assert len(refusals) == 1


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


def test_researchers_cannot_review(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    with pytest.raises(PolicyDenied, match="not an output checker"):
        airlock.review(req.id, "mallory", Vote.APPROVE)


def test_a_checker_votes_once(airlock: ReleaseService) -> None:
    req = airlock.request("diabetes", "alice", [OutputFile("t.csv", SAFE)], title="t")
    airlock.review(req.id, "carol", Vote.APPROVE)
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
    airlock.publish(request_id, "olu")
    with pytest.raises(PolicyDenied):
        airlock.publish(request_id, "olu")


@pytest.mark.parametrize(
    ("name", "content", "check"),
    [
        ("../t.csv", SAFE, "file_type"),
        ("t.xlsx", SAFE, "file_type"),
        ("t.csv", b"\xff\xfe", "readable"),
        ("t.csv", b"sex,mean_age\nF,41\n", "count_columns"),
    ],
)
def test_automatic_checks_fail_closed(name: str, content: bytes, check: str) -> None:
    results = check_output(OutputFile(name, content), 10)
    failed = [r.name for r in results if r.status.value == "fail"]
    assert failed == [check]
