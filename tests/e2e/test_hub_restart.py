"""A restart of ``sde serve``: by default it ends every session; with ``--keep-sessions``
the real JupyterHub leaves the servers running when it stops, and the next hub on the
same home (same database, same cookie secret) takes them back, routes included, so a
researcher's lab answers through the new proxy with the same browser session. The chart's
``secrets.keys.hubDatabaseUrl`` relies on this same JupyterHub behaviour with KubeSpawner
(not runnable here: no pods)."""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress
from pathlib import Path

import pytest

from sde.services.governance import GovernanceService, GovernanceSettings
from sde.services.home import Home
from sde.services.wiring import control_plane, policy_engine
from tests.e2e.hubkit import hub_ports, running_hub, sessions, sign_in, spawn, wait_for_lab
from tests.factories import airlock_home

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return airlock_home(tmp_path / "h")


def _kill_sessions(home: Home) -> None:
    for pid in sessions(home):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-sessions"])
def test_a_workspace_outlives_a_restart_of_the_hub_only_when_asked(
    home: Home, tmp_path: Path, keep: bool
) -> None:
    port = hub_ports()
    extra = ["--keep-sessions"] if keep else []
    tokens: list[str] = []
    try:
        with running_hub(
            home, tmp_path / "first.log", *extra, port=port, leave_sessions=True
        ) as url:
            alice = sign_in(url, home, "alice", tokens)
            assert spawn(alice, url, "alice", "diabetes").status_code == 302
            wait_for_lab(alice, url, "alice")
            running = set(sessions(home))
            assert len(running) == 1
        if not keep:
            # The hub stopped her server on its way down.
            assert sessions(home) == {}
            return
        assert set(sessions(home)) == running  # the hub is gone, her server is not
        second = [*extra, "--guard-interval", "1"]
        with running_hub(home, tmp_path / "second.log", *second, port=port) as url:
            # The same browser session, through the new hub's proxy, to the same server.
            status = alice.get(f"{url}/user/alice/api/status", timeout=10)
            assert status.status_code == 200, status.status_code
            assert "started" in status.json()
            assert set(sessions(home)) == running  # taken back, not started again
            # A session taken back is one the new hub's session guard enforces: suspending
            # the project stops it and the stop is recorded.
            with control_plane(home) as store:
                GovernanceService(
                    store, policy_engine(home), GovernanceSettings.from_mapping(home.settings.extra)
                ).suspend("olu", "diabetes", "agreement lapsed")
            deadline = time.monotonic() + 30
            while True:
                with control_plane(home) as store:
                    stops = [e for e in store.audit.events() if e.action == "workspace.stopped"]
                if stops and not sessions(home):
                    break
                assert time.monotonic() < deadline, "the session taken back was not stopped"
                time.sleep(0.5)
            assert [(e.subject, e.details["project"]) for e in stops] == [
                ("person:alice", "diabetes")
            ]
    finally:
        _kill_sessions(home)
