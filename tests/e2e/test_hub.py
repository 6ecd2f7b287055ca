"""``sde serve`` end to end: the real JupyterHub and proxy, sign-in with a one-time token,
a spawn refused by policy for a non-member, a member's JupyterLab started."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sde.services.home import Home, init_home
from sde.services.wiring import control_plane, policy_engine
from sde.web.auth import WebAuth
from tests.factories import airlock_project

pytestmark = [pytest.mark.e2e, pytest.mark.sql, pytest.mark.policy, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / ".build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
# The sde command with `serve` registered, whether or not sde.cli lists it yet.
SDE = [sys.executable, "-c", "import sde.cli.serve; from sde.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = init_home(tmp_path / "h")
    with control_plane(home) as store:
        airlock_project(store, policy_engine(home))
    return home


@pytest.fixture
def hub(home: Home, tmp_path: Path) -> Iterator[str]:
    if not PROXY.exists():
        pytest.fail(f"{PROXY} is missing: run SDE_SETUP_HUB=1 bash scripts/setup.sh")
    port = _free_port()
    log = (tmp_path / "hub.log").open("w")
    process = subprocess.Popen(
        [*SDE, "serve", "--home", str(home.root), "--port", str(port), "--proxy", str(PROXY)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the proxy and servers stop with it
        env={k: v for k, v in os.environ.items() if k != "SDE_MASTER_KEY"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/hub/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the hub did not start:\n" + (tmp_path / "hub.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        finally:
            log.close()
            for pid in _sessions(home):  # left behind only if the hub died without cleaning up
                os.kill(pid, signal.SIGKILL)


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


def _sign_in(url: str, home: Home, person: str, tokens: list[str]) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{url}/hub/login", timeout=10)
    assert page.status_code == 200
    xsrf = session.cookies.get("_xsrf")
    assert xsrf, "the login page set no _xsrf cookie"
    token = WebAuth(home.master_key()).link_token(person, dt.datetime.now(dt.UTC))
    tokens.append(token)
    answer = session.post(
        f"{url}/hub/login",
        data={"username": person, "password": token, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 302, answer.status_code
    assert "/hub/login" not in answer.headers["Location"]
    return session


def _spawn(session: requests.Session, url: str, person: str) -> requests.Response:
    return session.post(
        f"{url}/hub/spawn/{person}",
        data={"project": "diabetes", "_xsrf": session.cookies.get("_xsrf") or ""},
        allow_redirects=False,
        timeout=30,
    )


def _sessions(home: Home) -> dict[int, dict[str, str]]:
    """The single-user servers started for ``home``, by pid, with their environments
    (the spawner starts each in a session of its own, outside the hub's process group)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("SDE_HOME") == str(home.root) and "JUPYTERHUB_USER" in env:
            found[int(entry.name)] = env
    return found


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

    mallory = _sign_in(url, home, "mallory", tokens)
    denied = _spawn(mallory, url, "mallory")
    assert denied.status_code == 403
    assert "workspace refused" in denied.text
    assert re.search(r"not a member", denied.text), "the refusal does not name the reason"

    alice = _sign_in(url, home, "alice", tokens)
    form = alice.get(f"{url}/hub/spawn", timeout=10)
    assert 'value="diabetes"' in form.text
    started = _spawn(alice, url, "alice")
    assert started.status_code == 302
    # The lab page first: it takes alice through the hub's OAuth to her own server (an
    # /api/ request without that cookie is answered 403, not redirected).
    deadline = time.monotonic() + 45
    while True:
        lab = alice.get(f"{url}/user/alice/lab", timeout=10)
        if lab.status_code == 200 and "/user/alice/lab" in lab.url:
            break
        assert time.monotonic() < deadline, f"alice's lab did not open ({lab.status_code})"
        time.sleep(1)
    status = alice.get(f"{url}/user/alice/api/status", timeout=10)
    assert status.status_code == 200
    assert "started" in status.json()
    [env] = [e for e in _sessions(home).values() if e["JUPYTERHUB_USER"] == "alice"]
    assert (env["SDE_HOME"], env["SDE_USER"], env["SDE_PROJECT"]) == (
        str(home.root),
        "alice",
        "diabetes",
    )
    assert "SDE_MASTER_KEY" not in env
    log = (tmp_path / "hub.log").read_text()
    assert "signed in alice" in log
    assert not [t for t in tokens if t in log], "a sign-in token reached the hub's log"
