"""Which workspace pods are orphans: no session of the hub accounts for them, and they
are older than the grace period (pure rule, sde.domain.sessions.orphan_pods)."""

from __future__ import annotations

import datetime as dt

from sde.domain.sessions import ORPHAN_GRACE, RunningSession, WorkspacePod, orphan_pods

NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
OLD = NOW - ORPHAN_GRACE
YOUNG = NOW - ORPHAN_GRACE + dt.timedelta(seconds=1)


def pod(
    name: str, person: str, server: str = "", created: dt.datetime | None = OLD
) -> WorkspacePod:
    return WorkspacePod(name, person, server, "diabetes", created)


def test_a_pod_of_a_running_or_starting_session_is_not_an_orphan() -> None:
    sessions = [RunningSession("alice", "", "diabetes"), RunningSession("bea", "x", None)]
    pods = [pod("a", "alice"), pod("b", "bea", "x")]
    assert orphan_pods(pods, sessions, now=NOW) == []


def test_the_session_is_the_person_and_the_server_name() -> None:
    sessions = [RunningSession("alice", "", "diabetes")]
    pods = [pod("a", "alice", "other"), pod("b", "bea"), pod("c", "")]
    assert [p.name for p in orphan_pods(pods, sessions, now=NOW)] == ["a", "b", "c"]


def test_young_pods_wait_and_a_pod_of_unknown_age_does_not() -> None:
    pods = [
        pod("young", "bea", created=YOUNG),
        pod("old", "bea"),
        pod("unknown", "bea", created=None),
    ]
    assert [p.name for p in orphan_pods(pods, [], now=NOW)] == ["old", "unknown"]
    assert orphan_pods(pods[:1], [], now=NOW, grace=dt.timedelta(0)) == pods[:1]


def test_a_pod_of_another_project_on_the_same_server_is_an_orphan() -> None:
    sessions = [RunningSession("alice", "", "diabetes"), RunningSession("bea", "", None)]
    other = WorkspacePod("x", "alice", "", "asthma", OLD)
    unsaid = WorkspacePod("y", "bea", "", "asthma", OLD)  # the hub did not say: accounted for
    assert orphan_pods([pod("a", "alice"), other, unsaid], sessions, now=NOW) == [other]
