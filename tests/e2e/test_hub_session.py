"""A researcher's whole day on ``sde serve`` (the real JupyterHub, proxy, JupyterLab and
the hub's services), over the demo's data:

- a person with no approved project is refused a session, with the reason;
- alice signs in once: the airlock page (a hub service) lets her in through the hub's
  OAuth without another sign-in;
- she opens a workspace on her project (given a token for the sde service, not the home),
  runs a query through the notebook server's kernel API (the count matches the extract's),
  is refused reading the linked zone (recorded), and files a release request from the
  kernel; the request is on her airlock page;
- the project is suspended and the session guard stops her running session, recording
  why.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests

from sde.services.home import Home, open_home
from sde.services.projects import ProjectService
from sde.services.wiring import control_plane
from tests.e2e.hubkit import Kernel, api_token, running_hub, sessions, sign_in, spawn, wait_for_lab
from tests.e2e.test_cli import ok

pytestmark = [pytest.mark.e2e, pytest.mark.sql, pytest.mark.policy, pytest.mark.slow]

PROJECT = "diabetes-outcomes"

QUERY = """
import sde.workspace as ws
con = ws.connect()
print("patients", con.sql("select count(*) from patients").fetchall()[0][0])
"""

RELEASE = """
import sde.workspace as ws
by_sex = con.sql('''
    select sex, case when year_of_birth < 1970 then 'before 1970' else '1970 or after' end as born
    from patients where sex in ('F', 'M')
''').df()
table = ws.stats.crosstab(by_sex, "born", "sex")
request = ws.request_release({"born_by_sex.csv": table}, title="Cohort by sex and year of birth")
print("request", request.id, request.status.value)
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    root = tmp_path_factory.mktemp("hub-session") / "demo"
    ok("demo", home=root)
    home = open_home(root)
    with control_plane(home) as store:
        ProjectService(store).add_person("olu", "mallory", roles=["researcher"], organisation="Uni")
    return home


def test_sign_in_once_query_through_the_kernel_file_a_release_and_be_stopped_on_suspension(
    home: Home, tmp_path: Path
) -> None:
    log_path = tmp_path / "hub.log"
    tokens: list[str] = []
    with running_hub(home, log_path, "--guard-interval", "1") as url:
        mallory = sign_in(url, home, "mallory", tokens)
        denied = spawn(mallory, url, "mallory", PROJECT)
        assert denied.status_code == 403
        assert "not a member" in denied.text

        alice = sign_in(url, home, "alice", tokens)
        # One sign-in: the airlock page takes alice through the hub's OAuth.
        airlock = alice.get(f"{url}/services/airlock/", timeout=30)
        assert airlock.status_code == 200, airlock.text[-500:]
        assert airlock.url.endswith("/services/airlock/queue")
        assert "Signed in as <strong>alice</strong>" in airlock.text
        # Without the hub's sign-in there is no way in: a fresh browser is sent to the hub.
        stranger = requests.get(f"{url}/services/airlock/queue", timeout=30)
        assert "Signed in as" not in stranger.text
        assert "/hub/login" in stranger.url

        started = spawn(alice, url, "alice", PROJECT)
        assert started.status_code == 302, started.text[-500:]
        wait_for_lab(alice, url, "alice")
        kernel = Kernel(url, "alice", api_token(alice, url, "alice"))
        try:
            out, error = kernel.run(QUERY)
            assert error is None, error
            counted = re.search(r"^patients (\d+)$", out, re.M)
            assert counted, out
            import sde.workspace as ws

            with ws.connect(PROJECT, home=home, user="alice") as con:
                [(expected,)] = con.sql("select count(*) from patients").fetchall()
            assert int(counted.group(1)) == expected > 0

            # An escape from inside the session: the linked zone is not there to read, the
            # refusal names the rule and is recorded for alice through the sde service.
            linked = home.linked / "patients"
            with control_plane(home) as store:
                before = store.audit.count()
            _, error = kernel.run(
                f"rows = con.sql(\"select * from read_parquet('{linked}/*.parquet')\").fetchall()"
            )
            assert error is not None
            assert "file access outside the scratch area" in error
            with control_plane(home) as store:
                refused = [e for e in store.audit.events() if e.action == "workspace.refused"]
            assert [(e.actor, e.details["reason"]) for e in refused if e.seq > before] == [
                ("alice", "file access outside the scratch area")
            ]

            out, error = kernel.run(RELEASE)
            assert error is None, error
            filed = re.search(r"^request (rr-[0-9a-f]{12}) (\w+)$", out, re.M)
            assert filed, out
        finally:
            kernel.close()
        request_id = filed.group(1)
        with control_plane(home) as store:
            request = store.get_release_request(request_id)
        assert (request.project_id, request.author) == (PROJECT, "alice")
        queue = alice.get(f"{url}/services/airlock/queue", timeout=30)
        assert request_id in queue.text

        # The kill switch: suspending the project stops alice's running session.
        assert [e for e in sessions(home).values() if e["JUPYTERHUB_USER"] == "alice"]
        ok(
            "project",
            "suspend",
            PROJECT,
            "--reason",
            "data sharing agreement lapsed",
            home=home.root,
            actor="olu",
        )
        deadline = time.monotonic() + 30
        while True:
            running = [e for e in sessions(home).values() if e["JUPYTERHUB_USER"] == "alice"]
            with control_plane(home) as store:
                stops = [e for e in store.audit.events() if e.action == "workspace.stopped"]
            if not running and stops:
                break
            assert time.monotonic() < deadline, "alice's session was not stopped and recorded"
            time.sleep(0.5)
        assert len(stops) == 1
        assert stops[0].subject == "person:alice"
        assert stops[0].details["project"] == PROJECT
        assert any("suspended" in r for r in stops[0].details["reasons"])
        # And she cannot open it again.
        again = spawn(alice, url, "alice", PROJECT)
        assert again.status_code == 403
        assert "suspended" in again.text
    log = log_path.read_text()
    assert not [t for t in tokens if t in log], "a sign-in token reached the hub's log"
