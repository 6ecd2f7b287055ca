"""``sde serve`` end to end: the real JupyterHub and proxy, sign-in with a one-time token,
a spawn refused by policy for a non-member, a member's JupyterLab started."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sde.hub.lab import DISABLED_LAB_PLUGINS
from sde.services.home import Home
from sde.services.wiring import control_plane
from sde.web.auth import WebAuth
from tests.e2e.hubkit import (
    api_token,
    running_hub,
    services,
    sessions,
    sign_in,
    spawn,
    wait_for_lab,
)
from tests.factories import airlock_home

pytestmark = [pytest.mark.e2e, pytest.mark.sql, pytest.mark.policy, pytest.mark.slow]

SDE = [sys.executable, "-c", "from sde.cli import main; main()"]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return airlock_home(tmp_path / "h")


@pytest.fixture
def hub(home: Home, tmp_path: Path) -> Iterator[str]:
    with running_hub(home, tmp_path / "hub.log") as url:
        yield url


def _serve(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    # A subprocess: importing sde.cli.serve here would add `serve` to this process's `main`.
    return subprocess.run(
        [*SDE, "serve", "--home", str(home.root), "--proxy", "/bin/true", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_writes_its_config_and_prints_a_sign_in_token(home: Home) -> None:
    result = _serve(home, "--no-start", "--port", "8300", "--link", "alice")
    assert result.returncode == 0, result.stderr
    line, path = result.stdout.strip().splitlines()
    assert line.startswith("sign in at http://127.0.0.1:8300/hub/login as alice")
    token = line.rsplit(" ", 1)[1]
    claim = WebAuth(home.master_key()).check_link(token, dt.datetime.now(dt.UTC))
    assert claim.person == "alice"
    assert Path(path) == home.root / "hub" / "jupyterhub_config.py"
    assert "8300" in Path(path).read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "0.0.0.0"], "not a loopback address"),
        (["--link", "nobody"], "nobody"),
    ],
)
def test_serve_refuses(home: Home, args: list[str], message: str) -> None:
    result = _serve(home, "--no-start", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_serve_signs_in_refuses_a_non_member_and_starts_a_members_lab(
    hub: str, home: Home, tmp_path: Path
) -> None:
    url = hub
    tokens: list[str] = []
    # A wrong token is refused at the login form.
    stranger = requests.Session()
    stranger.get(f"{url}/hub/login", timeout=10)
    refused = stranger.post(
        f"{url}/hub/login",
        data={"username": "alice", "password": "nope", "_xsrf": stranger.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=10,
    )
    assert refused.status_code == 403
    # The hub's four sde services run (and are what the fixture stops if the hub cannot).
    assert len(services(home)) == 4
    # The patient's page is public too, with its own sign-in (not the hub's).
    patient = requests.get(f"{url}/services/patient/", timeout=10)
    assert patient.status_code == 200
    assert "/hub/login" not in patient.url
    assert 'name="nhs_number"' in patient.text
    assert "script-src 'none'" in patient.headers["content-security-policy"]
    forged = requests.post(
        f"{url}/services/patient/sign-in", data={"form_token": "forged"}, timeout=10
    )
    assert forged.status_code == 403
    # The public register is there for anyone, without signing in (not built yet here).
    register = requests.get(f"{url}/services/register/", timeout=10)
    assert register.status_code == 404
    assert "/hub/login" not in register.url
    assert "sde register build" in register.text
    built = subprocess.run(
        [*SDE, "register", "build", "--home", str(home.root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    register = requests.get(f"{url}/services/register/projects/", timeout=10)
    assert register.status_code == 200
    assert "diabetes" in register.text
    assert "set-cookie" not in register.headers

    mallory = sign_in(url, home, "mallory", tokens)
    denied = spawn(mallory, url, "mallory", "diabetes")
    assert denied.status_code == 403
    assert "workspace refused" in denied.text
    assert re.search(r"not a member", denied.text), "the refusal does not name the reason"

    alice = sign_in(url, home, "alice", tokens)
    form = alice.get(f"{url}/hub/spawn", timeout=10)
    assert 'value="diabetes"' in form.text
    started = spawn(alice, url, "alice", "diabetes")
    assert started.status_code == 302
    # The lab page first: it takes alice through the hub's OAuth to her own server (an
    # /api/ request without that cookie is answered 403, not redirected).
    wait_for_lab(alice, url, "alice")
    status = alice.get(f"{url}/user/alice/api/status", timeout=10)
    assert status.status_code == 200
    assert "started" in status.json()

    # Download, export, view-as-page and terminals are off, each refusal recorded.
    work = home.root / "hub" / "users" / "alice"
    (work / "counts.csv").write_text("sex,n\nF,12\n")
    refusals = {
        f"{url}/user/alice/files/counts.csv?download=1": "Downloading files",
        f"{url}/user/alice/nbconvert/html/x.ipynb?download=true": "Exporting notebooks",
        f"{url}/user/alice/view/counts.csv": "Opening files as web pages",
    }
    for address, what in refusals.items():
        refused = alice.get(address, timeout=10)
        assert refused.status_code == 403, (address, refused.status_code)
        assert f"{what}" in refused.text
        assert "F,12" not in refused.text
    token = api_token(alice, url, "alice")
    terminal = requests.post(
        f"{url}/user/alice/api/terminals", headers={"Authorization": f"token {token}"}, timeout=10
    )
    assert terminal.status_code == 404
    with control_plane(home) as store:
        refused_events = [e for e in store.audit.events() if e.action == "workspace.refused"]
    assert len(refused_events) == len(refusals)
    assert {(e.actor, e.subject) for e in refused_events} == {("alice", "project:diabetes")}
    lab = alice.get(f"{url}/user/alice/lab", timeout=10)
    for plugin in DISABLED_LAB_PLUGINS:
        assert plugin in lab.text, f"{plugin} is not disabled in the lab's page config"
    [env] = [e for e in sessions(home).values() if e["JUPYTERHUB_USER"] == "alice"]
    assert (env["SDE_USER"], env["SDE_PROJECT"]) == ("alice", "diabetes")
    assert "SDE_HOME" not in env, "the session was given the whole home"
    assert "SDE_MASTER_KEY" not in env
    assert env["SDE_API_URL"].endswith("/services/airlock")
    assert env["SDE_EXTRACT"] == str(home.project_workspace("diabetes") / "extract")
    log = (tmp_path / "hub.log").read_text()
    assert "signed in alice" in log
    assert not [t for t in tokens if t in log], "a sign-in token reached the hub's log"
