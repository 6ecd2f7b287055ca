"""The session guard's decisions over a real control plane and policy engine: which
running sessions must stop, and why; each stop recorded. The hub here is a recording
stand-in for JupyterHub's REST API (``RecordingHub``); the real hub's API, and a real
stop after a real suspension, are exercised by tests/e2e/test_hub_session.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from sde.domain.sessions import RunningSession
from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home, init_home
from sde.services.projects import ProjectService
from sde.services.sessions import sessions_to_stop, stop_refused_sessions
from sde.services.wiring import control_plane, policy_engine
from tests.factories import airlock_project

pytestmark = [pytest.mark.sql, pytest.mark.policy]

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    with control_plane(home) as store:
        airlock_project(store, policy_engine(home), extra_researchers=["rosa"])
    return home


class RecordingHub:
    """Stands in for JupyterHub's REST API: the sessions it is given, the stops asked."""

    def __init__(self, sessions: list[RunningSession]) -> None:
        self.sessions = sessions
        self.stopped: list[RunningSession] = []

    def running_sessions(self) -> list[RunningSession]:
        return list(self.sessions)

    def stop(self, session: RunningSession) -> None:
        self.stopped.append(session)


def _governance(home: Home, store: object) -> GovernanceService:
    return GovernanceService(
        store,  # type: ignore[arg-type]
        policy_engine(home),
        GovernanceSettings.from_mapping(home.settings.extra),
    )


ALICE = RunningSession("alice", "", "diabetes")


def test_an_allowed_session_goes_on(home: Home) -> None:
    with control_plane(home) as store:
        assert sessions_to_stop(store, policy_engine(home), [ALICE], today=TODAY) == []


def test_a_suspended_project_stops_its_sessions_and_each_stop_is_recorded(home: Home) -> None:
    with control_plane(home) as store:
        _governance(home, store).suspend("olu", "diabetes", "agreement lapsed")
        hub = RecordingHub([ALICE])
        stops = stop_refused_sessions(store, policy_engine(home), hub, store.audit, today=TODAY)
        events = [e for e in store.audit.events() if e.action == "workspace.stopped"]
    assert hub.stopped == [ALICE]
    [stop] = stops
    assert any("suspended" in r for r in stop.reasons)
    [event] = events
    assert (event.actor, event.subject) == ("session-guard", "person:alice")
    assert event.details["project"] == "diabetes"
    assert event.details["reasons"] == list(stop.reasons)


def test_a_banned_person_is_stopped_and_no_one_else(home: Home) -> None:
    rosa = RunningSession("rosa", "", "diabetes")
    with control_plane(home) as store:
        ProjectService(store).add_member("olu", "diabetes", "rosa")
        assert sessions_to_stop(store, policy_engine(home), [ALICE, rosa], today=TODAY) == []
        _governance(home, store).ban_person(
            "olu", "alice", until=TODAY + dt.timedelta(days=30), reason="misuse"
        )
        stops = sessions_to_stop(store, policy_engine(home), [ALICE, rosa], today=TODAY)
    [stop] = stops
    assert stop.session == ALICE
    assert any("banned" in r for r in stop.reasons)


@pytest.mark.parametrize(
    ("session", "reason"),
    [
        (RunningSession("alice", "", None), "not opened on a project"),
        (RunningSession("alice", "", "../x"), "not opened on a project"),
        (RunningSession("Robert'); drop", "", "diabetes"), "not a person"),
        (RunningSession("mallory", "", "diabetes"), "not a member"),
        (RunningSession("nobody", "", "diabetes"), "person is not known"),
    ],
)
def test_sessions_that_cannot_be_accounted_for_are_stopped(
    home: Home, session: RunningSession, reason: str
) -> None:
    with control_plane(home) as store:
        [stop] = sessions_to_stop(store, policy_engine(home), [session], today=TODAY)
    assert any(reason in r for r in stop.reasons), stop.reasons


def test_the_guard_says_when_the_hub_cannot_be_reached(home: Home) -> None:
    from click.testing import CliRunner

    from sde.cli import main
    from tests.browser import free_port

    env = {
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{free_port()}/hub/api",  # nothing listens
        "JUPYTERHUB_API_TOKEN": "a" * 32,
    }
    result = CliRunner().invoke(
        main, ["session-guard", "--once", "--home", str(home.root)], env=env
    )
    assert result.exit_code == 2, result.output
    assert "the hub's API at http://127.0.0.1:" in result.output
    assert "could not be reached" in result.output
    assert "a" * 32 not in result.output
    unset: dict[str, str | None] = dict.fromkeys(env)
    missing = CliRunner().invoke(
        main, ["session-guard", "--once", "--home", str(home.root)], env=unset
    )
    assert missing.exit_code == 2
    assert "JUPYTERHUB_API_URL" in missing.output
