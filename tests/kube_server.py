"""A throwaway Kubernetes API server for the adapter tests: a real kube-apiserver on a
real etcd, both built from their Go modules by ``bash scripts/setup_kube.sh`` (or
``SDE_SETUP_KUBE=1 bash scripts/setup.sh``) into ``.build/bin``.

``start_server()`` starts etcd (data in a new temp directory, fsync off, client and peer
ports on 127.0.0.1) and kube-apiserver on a free 127.0.0.1 port with:

- a serving certificate it generates itself (``--cert-dir``; the file holds the
  certificate and the CA that signed it, valid for 127.0.0.1), given to the client as
  its CA bundle, so TLS is checked as in a real cluster;
- static bearer tokens (``--token-auth-file``): an admin in ``system:masters``, a
  ``viewer`` with no rights, and ``sde-hub-test`` with none until a test binds a Role to
  it (the chart's hub Role, say), under RBAC;
- a fresh RSA service-account signing key (the server will not start without one);
- the default admission plugins, so Pod Security Admission is on, except
  ``ServiceAccount`` (it would refuse every pod until a controller-manager, which this
  test server does not run, made the namespace's ``default`` service account);
- ``--allow-privileged=true`` as on a real cluster, so a privileged pod reaches Pod
  Security Admission instead of being refused by validation first;
- ``--endpoint-reconciler-type=none``: the server advertises 127.0.0.1, which the
  endpoint reconciler refuses.

There is no kubelet, scheduler or controller-manager: pods are stored and stay
``Pending``, and a pod never bound to a node is deleted at once.

``kube_server`` is the session-scoped fixture: the servers start the first time a test
asks for them and are killed, their directory removed, when the session ends, pass or
fail. Missing binaries fail the tests (never a silent skip) with the command to build
them.
"""

from __future__ import annotations

import atexit
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.browser import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".build" / "bin"
KUBE_APISERVER = BIN / "kube-apiserver"
ETCD = BIN / "etcd"
SETUP_SCRIPT = ROOT / "scripts" / "setup_kube.sh"
SETUP_HINT = (
    "build them with `bash scripts/setup_kube.sh` (or `SDE_SETUP_KUBE=1 bash scripts/setup.sh`)"
)
START_TIMEOUT_S = 60.0


class KubeUnavailable(RuntimeError):
    """No binaries, binaries of the wrong version, or servers that would not start."""


def pinned_versions() -> tuple[str, str]:
    """The kube-apiserver and etcd versions the setup script builds (its single source)."""
    text = SETUP_SCRIPT.read_text(encoding="utf-8")
    kube = re.search(r'^KUBE_VERSION="(v[0-9.]+)"', text, re.M)
    etcd = re.search(r'^ETCD_VERSION="(v[0-9.]+)"', text, re.M)
    if not (kube and etcd):
        raise KubeUnavailable(f"{SETUP_SCRIPT} does not pin KUBE_VERSION and ETCD_VERSION")
    return kube[1], etcd[1]


@dataclass
class KubeServer:
    """A running etcd + kube-apiserver. ``url`` is ``https://127.0.0.1:<port>``."""

    url: str
    token: str
    viewer_token: str
    hub_token: str
    ca_file: Path
    version: str
    workdir: Path
    logs: dict[str, Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def stop(self) -> None:
        # The API server first, then its etcd.
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs.get(name)
        if path is None or not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def check_binaries() -> tuple[str, str]:
    kube_version, etcd_version = pinned_versions()
    for binary in (KUBE_APISERVER, ETCD):
        if not binary.is_file():
            raise KubeUnavailable(f"{binary} is missing: {SETUP_HINT}")
    kube = _version_of([str(KUBE_APISERVER), "--version"])
    if kube.strip() != f"Kubernetes {kube_version}":
        raise KubeUnavailable(
            f"{KUBE_APISERVER} reports {kube.strip()!r}, not {kube_version}: {SETUP_HINT}"
        )
    etcd = _version_of([str(ETCD), "--version"])
    if f"etcd Version: {etcd_version.removeprefix('v')}" not in etcd:
        raise KubeUnavailable(f"{ETCD} is not etcd {etcd_version}: {SETUP_HINT}")
    return kube_version, etcd_version


def _version_of(args: list[str]) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise KubeUnavailable(f"{args[0]} cannot be run ({exc}): {SETUP_HINT}") from None
    return result.stdout


def _write_keys(workdir: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = workdir / "sa.key"
    public = workdir / "sa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    private.chmod(0o600)
    return private, public


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, cwd=log.parent)


def _wait(
    server: KubeServer, what: str, url: str, headers: dict[str, str], ca: Path | None
) -> None:
    """Poll ``url`` until it answers 200; fail when the process exits or time runs out.
    With ``ca``, the TLS context is made from that file at each attempt (the server
    writes it as it starts)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        for process, name in zip(server.processes, ("etcd", "kube-apiserver"), strict=False):
            if process.poll() is not None:
                raise KubeUnavailable(
                    f"{name} exited at start-up (code {process.returncode}):\n"
                    + server.log_tail(name)
                )
        try:
            ctx = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=1, context=ctx) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError, ssl.SSLError):
            pass  # not listening yet, or the certificate not written yet
        if time.monotonic() > deadline:
            raise KubeUnavailable(
                f"{what} did not become ready in {START_TIMEOUT_S:g} s:\n" + server.log_tail(what)
            )
        time.sleep(0.1)


def start_server() -> KubeServer:
    """Start etcd and kube-apiserver; returns once ``/readyz`` answers 200."""
    kube_version, _ = check_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="sde-kube-"))
    token = secrets.token_urlsafe(24)
    viewer_token = secrets.token_urlsafe(24)
    hub_token = secrets.token_urlsafe(24)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = KubeServer(
        url=f"https://127.0.0.1:{api_port}",
        token=token,
        viewer_token=viewer_token,
        hub_token=hub_token,
        ca_file=workdir / "certs" / "apiserver.crt",
        version=kube_version,
        workdir=workdir,
        logs={"etcd": workdir / "etcd.log", "kube-apiserver": workdir / "kube-apiserver.log"},
    )
    atexit.register(server.stop)  # should the session die before the fixture's finaliser
    try:
        etcd_client = f"http://127.0.0.1:{etcd_port}"
        etcd_peer = f"http://127.0.0.1:{peer_port}"
        server.processes.append(
            _spawn(
                [
                    str(ETCD),
                    "--name=sde-test",
                    f"--data-dir={workdir / 'etcd'}",
                    f"--listen-client-urls={etcd_client}",
                    f"--advertise-client-urls={etcd_client}",
                    f"--listen-peer-urls={etcd_peer}",
                    f"--initial-advertise-peer-urls={etcd_peer}",
                    f"--initial-cluster=sde-test={etcd_peer}",
                    "--unsafe-no-fsync",
                    "--log-level=error",
                ],
                server.logs["etcd"],
            )
        )
        _wait(server, "etcd", f"{etcd_client}/health", {}, None)

        signing_key, public_key = _write_keys(workdir)
        tokens = workdir / "tokens.csv"
        tokens.write_text(
            f'{token},sde-admin,sde-admin,"system:masters"\n{viewer_token},viewer,viewer\n'
            f"{hub_token},sde-hub-test,sde-hub-test\n",
            encoding="utf-8",
        )
        tokens.chmod(0o600)
        server.processes.append(
            _spawn(
                [
                    str(KUBE_APISERVER),
                    f"--etcd-servers={etcd_client}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--cert-dir={workdir / 'certs'}",
                    "--endpoint-reconciler-type=none",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    f"--service-account-key-file={public_key}",
                    f"--service-account-signing-key-file={signing_key}",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    "--disable-admission-plugins=ServiceAccount",
                    "--allow-privileged=true",
                    "--enable-priority-and-fairness=false",
                ],
                server.logs["kube-apiserver"],
            )
        )
        _wait(
            server,
            "kube-apiserver",
            f"{server.url}/readyz",
            {"Authorization": f"Bearer {token}"},
            server.ca_file,
        )
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def kube_server() -> Iterator[KubeServer]:
    try:
        server = start_server()
    except KubeUnavailable as exc:
        reason = str(exc)
    else:
        try:
            yield server
        finally:
            server.stop()
        return
    # Outside the except block, so the report shows the reason alone, not a chained trace.
    pytest.fail(f"Kubernetes API server tests cannot run: {reason}", pytrace=False)
