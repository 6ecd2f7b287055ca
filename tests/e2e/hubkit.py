"""Running ``sde serve`` (the real JupyterHub, proxy, single-user servers and the hub's
services) for end-to-end tests, and talking to it as a browser and through Jupyter's
kernel API."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import requests
import websocket

from sde.services.home import Home
from sde.web.auth import WebAuth
from tests.browser import free_port

REPO = Path(__file__).resolve().parents[2]
PROXY = REPO / ".build" / "node" / "node_modules" / ".bin" / "configurable-http-proxy"
SDE = [sys.executable, "-c", "from sde.cli import main; main()"]


def sessions(home: Home) -> dict[int, dict[str, str]]:
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
        if env.get("SDE_EXTRACT", "").startswith(f"{home.root}/") and "JUPYTERHUB_USER" in env:
            found[int(entry.name)] = env
    return found


def hub_ports() -> int:
    """A free port whose next four are free too (sde's hub uses port .. port + 4: the
    proxy's API, the hub, the airlock page, the register)."""
    port = free_port()
    while port > 65530 or any(_in_use(port + k) for k in range(1, 5)):
        port = free_port()
    return port


def services(home: Home) -> list[int]:
    """The hub's sde services (airlock page, register, patient's page, session guard) for
    ``home``."""
    found = []
    marker = f"\0--home\0{home.root}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
        if marker in cmdline and b"\0serve\0--home" not in cmdline:
            found.append(int(entry.name))
    return found


@contextmanager
def running_hub(
    home: Home,
    log_path: Path,
    *extra: str,
    command: Callable[[int], list[str]] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    leave_sessions: bool = False,
) -> Iterator[str]:
    """``sde serve`` (or ``command(port)``) on free ports until the block ends; yields the
    hub's URL (``http://<host>:<port>``). ``leave_sessions``: single-user servers the hub
    left running are not killed after it (a test that restarts the hub kills them)."""
    if not PROXY.exists():
        pytest.fail(f"{PROXY} is missing: run SDE_SETUP_HUB=1 bash scripts/setup.sh")
    port = port or hub_ports()
    argv = (
        command(port)
        if command is not None
        else [
            *SDE,
            "serve",
            "--home",
            str(home.root),
            "--port",
            str(port),
            "--proxy",
            str(PROXY),
            *extra,
        ]
    )
    log = log_path.open("w")
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the proxy and servers stop with it
        env={k: v for k, v in os.environ.items() if not k.startswith("SDE_")},
        cwd=log_path.parent,
    )
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 45
        while True:
            try:
                if requests.get(f"{url}/hub/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the hub did not start:\n" + log_path.read_text()[-4000:])
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        finally:
            log.close()
            # Left behind only if the hub died without cleaning up: its servers and services.
            for pid in [*([] if leave_sessions else sessions(home)), *services(home)]:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def sign_in(url: str, home: Home, person: str, tokens: list[str]) -> requests.Session:
    """A browser-like session signed in to the hub as ``person`` (one-time token)."""
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


def spawn(session: requests.Session, url: str, person: str, project: str) -> requests.Response:
    return session.post(
        f"{url}/hub/spawn/{person}",
        data={"project": project, "_xsrf": session.cookies.get("_xsrf", path="/hub/") or ""},
        allow_redirects=False,
        timeout=60,
    )


def wait_for_lab(session: requests.Session, url: str, person: str, seconds: float = 60) -> None:
    """Open the person's lab (taking them through the hub's OAuth to their server)."""
    deadline = time.monotonic() + seconds
    while True:
        lab = session.get(f"{url}/user/{person}/lab", timeout=10)
        if lab.status_code == 200 and f"/user/{person}/lab" in lab.url:
            return
        assert time.monotonic() < deadline, f"{person}'s lab did not open ({lab.status_code})"
        time.sleep(1)


def api_token(session: requests.Session, url: str, person: str) -> str:
    """A short-lived API token for ``person``, asked for with their hub cookie."""
    answer = session.post(
        f"{url}/hub/api/users/{person}/tokens",
        json={"note": "end-to-end test", "expires_in": 600},
        headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/") or ""},
        timeout=10,
    )
    assert answer.status_code == 201, (answer.status_code, answer.text[:300])
    return str(answer.json()["token"])


class Kernel:
    """A kernel in a person's server, driven over Jupyter's REST and websocket API."""

    def __init__(self, url: str, person: str, token: str) -> None:
        self.base = f"{url}/user/{person}/api"
        self.headers = {"Authorization": f"token {token}"}
        started = requests.post(f"{self.base}/kernels", headers=self.headers, timeout=60)
        assert started.status_code == 201, (started.status_code, started.text[:300])
        self.id = started.json()["id"]
        socket_url = self.base.replace("http://", "ws://") + f"/kernels/{self.id}/channels"
        self.socket = websocket.create_connection(
            socket_url, header=[f"Authorization: token {token}"], timeout=120
        )
        self.session = uuid.uuid4().hex

    def run(self, code: str) -> tuple[str, str | None]:
        """Run ``code``; its standard output, and the error's name and value if it raised."""
        msg_id = uuid.uuid4().hex
        self.socket.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "test",
                        "session": self.session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": dt.datetime.now(dt.UTC).isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        out: list[str] = []
        error = None
        while True:
            message = json.loads(self.socket.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            content = message["content"]
            if kind == "stream" and content.get("name") == "stdout":
                out.append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return "".join(out), error

    def close(self) -> None:
        self.socket.close()
        requests.delete(f"{self.base}/kernels/{self.id}", headers=self.headers, timeout=30)
