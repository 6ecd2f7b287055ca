"""The OPA server engine against a real OPA server that these tests start themselves.

``opa build -b policies --ignore '*_test.rego' --revision <policy bundle hash>`` makes the
bundle, ``opa run --server --addr 127.0.0.1:<free port> -b bundle.tar.gz`` serves it (the
binary comes from ``SDE_SETUP_OPA=1 bash scripts/setup.sh``; without it these tests fail,
they are not skipped). Faults are made by a small HTTP front in this module that passes
requests through to that server until told to hang, drop the connection or answer
something else; a listening socket that never accepts stands for a server that takes the
connection and never answers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sde.adapters.opa_server import OpaServerEngine, read_decision
from sde.adapters.rego_embedded import (
    PolicyEngineFault,
    RegoEmbeddedEngine,
    default_policy_dir,
    policy_bundle_hash,
)
from sde.domain.policy import ACCESS, CANARIES, EGRESS, Decision
from sde.errors import ConfigError
from sde.services.audit import MemoryAuditLog
from sde.services.decisions import AuditedPolicyEngine, input_digest
from sde.services.home import Home, Settings
from sde.services.wiring import policy_engine
from tests.browser import free_port
from tests.integration.test_rego_opa import ACCESS_BASE, CORPORA, OPA, with_path
from tests.processes import running

pytestmark = pytest.mark.opa

POLICIES = default_policy_dir()
# an egress input the policy allows: the canary's, kept in step with the policy
EGRESS_ALLOWED = next(dict(c.input) for c in CANARIES if c.package == EGRESS and c.allow)
MARKER = "r-marker-7319"  # an input value that must never reach a reason
MARKED_INPUT = with_path(ACCESS_BASE, "person/id", MARKER)


# --- a real OPA server ----------------------------------------------------------------


@dataclass
class OpaServer:
    url: str
    bundle_hash: str


def build_bundle(policy_dir: Path, out: Path, revision: str | None) -> None:
    args = [str(OPA), "build", "-b", str(policy_dir), "--ignore", "*_test.rego", "-o", str(out)]
    if revision is not None:
        args += ["--revision", revision]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@contextmanager
def running_opa(policy_dir: Path, workdir: Path, *, revision: str | None) -> Iterator[OpaServer]:
    """An OPA server on 127.0.0.1 serving ``policy_dir`` as a bundle; stopped on exit,
    pass or fail."""
    if not (OPA.is_file() and os.access(OPA, os.X_OK)):
        pytest.fail(
            f"the OPA binary {OPA} is missing: "
            "build it with `SDE_SETUP_OPA=1 bash scripts/setup.sh`"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    bundle = workdir / "bundle.tar.gz"
    build_bundle(policy_dir, bundle, revision)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(OPA),
        "run",
        "--server",
        "--addr",
        f"127.0.0.1:{port}",
        "--log-level",
        "error",
        "--shutdown-grace-period",
        "1",
        "-b",
        str(bundle),
    ]
    with running(argv, name="OPA", ready_url=f"{url}/health", log=workdir / "opa.log"):
        yield OpaServer(url, revision or "")


@pytest.fixture(scope="session")
def opa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaServer]:
    revision = policy_bundle_hash(POLICIES)
    with running_opa(POLICIES, tmp_path_factory.mktemp("opa"), revision=revision) as server:
        # the policies must not have changed while the bundle was built
        assert policy_bundle_hash(POLICIES) == revision
        yield server


@pytest.fixture(scope="module")
def server_engine(opa_server: OpaServer) -> Iterator[OpaServerEngine]:
    with OpaServerEngine(opa_server.url, expected_bundle_hash=opa_server.bundle_hash) as engine:
        yield engine


@pytest.fixture(scope="module")
def embedded() -> RegoEmbeddedEngine:
    return RegoEmbeddedEngine(POLICIES)


# --- a front that passes through to OPA, or misbehaves --------------------------------


@dataclass
class Front:
    """An HTTP server in front of OPA. ``mode``: ``pass`` (forward), ``hang`` (read the
    request, never answer), ``drop`` (close without answering), ``reply`` (answer
    ``reply``). ``seen`` lists ``(method, path)`` of every request."""

    upstream: str
    mode: str = "pass"
    reply: tuple[int, bytes] = (200, b"{}")
    seen: list[tuple[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def posts(self) -> int:
        return sum(method == "POST" for method, _ in self.seen)


class _FrontHandler(BaseHTTPRequestHandler):
    server: _FrontServer

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        self._serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _serve(self, body: bytes | None) -> None:
        front = self.server.front
        front.seen.append((self.command, self.path))
        if front.mode == "hang":
            front.release.wait(30)
            self.close_connection = True
            return
        if front.mode == "drop":
            self.close_connection = True
            return
        if front.mode == "reply":
            status, payload = front.reply
        else:
            request = urllib.request.Request(
                front.upstream + self.path,
                data=body,
                method=self.command,
                headers={"Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    status, payload = answer.status, answer.read()
            except urllib.error.HTTPError as error:
                status, payload = error.code, error.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _FrontServer(ThreadingHTTPServer):
    daemon_threads = True
    front: Front


@pytest.fixture
def front(opa_server: OpaServer) -> Iterator[Front]:
    server = _FrontServer(("127.0.0.1", 0), _FrontHandler)
    server.front = Front(upstream=opa_server.url, url=f"http://127.0.0.1:{server.server_port}")
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server.front
    finally:
        server.front.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fast_engine(front: Front, **options: float) -> OpaServerEngine:
    """An engine through ``front`` with a short time-out, started while it passes through."""
    settings: dict[str, float] = {"timeout_s": 0.3, "retries": 2, "backoff_s": 0.05}
    settings.update(options)
    return OpaServerEngine(
        front.url,
        expected_bundle_hash=policy_bundle_hash(POLICIES),
        timeout_s=settings["timeout_s"],
        retries=int(settings["retries"]),
        backoff_s=settings["backoff_s"],
    )


def assert_engine_refusal(decision: Decision, *fragments: str) -> None:
    assert decision.allow is False
    assert decision.is_engine_error, decision.reasons
    (reason,) = decision.reasons
    for fragment in fragments:
        assert fragment in reason, reason
    assert MARKER not in reason


# --- decisions ------------------------------------------------------------------------


def test_the_server_engine_starts_on_the_bundle_of_these_policies(
    server_engine: OpaServerEngine,
) -> None:
    assert server_engine.bundle_hash == policy_bundle_hash(POLICIES)
    assert server_engine.bundle_hash == RegoEmbeddedEngine(POLICIES).bundle_hash
    assert server_engine.kind == "opa"
    allowed = server_engine.decide(ACCESS, ACCESS_BASE)
    assert allowed == Decision(allow=True)
    refused = server_engine.decide(ACCESS, with_path(ACCESS_BASE, "project/members", ["r-bob"]))
    assert refused == Decision(False, ("person r-ada is not a member of project prj-1",))
    assert server_engine.decide(EGRESS, EGRESS_ALLOWED) == Decision(allow=True)


@pytest.mark.policy
@pytest.mark.parametrize("package", sorted(CORPORA))
def test_server_and_embedded_engines_decide_the_corpus_alike(
    server_engine: OpaServerEngine, embedded: RegoEmbeddedEngine, package: str
) -> None:
    cases = CORPORA[package]()
    assert len(cases) >= 100
    problems = []
    allowed = 0
    for name, document in cases:
        by_server = server_engine.decide(package, document)
        by_embedded = embedded.decide(package, document)
        if by_server != by_embedded or by_server.is_engine_error:
            problems.append(f"{name}: server {by_server}; embedded {by_embedded}")
        allowed += by_server.allow
    assert problems == []
    assert 5 <= allowed <= len(cases) - 50


@pytest.mark.policy
def test_server_and_embedded_engines_decide_the_canaries_alike(
    server_engine: OpaServerEngine, embedded: RegoEmbeddedEngine
) -> None:
    for canary in CANARIES:
        assert server_engine.decide(canary.package, canary.input) == embedded.decide(
            canary.package, canary.input
        ), canary.name


def test_an_unknown_package_is_an_undefined_decision(server_engine: OpaServerEngine) -> None:
    assert_engine_refusal(server_engine.decide("sde.nothing_here", MARKED_INPUT), "undefined")


@pytest.mark.parametrize("package", ["sde/access", "sde.access/../x", "", "sde..access"])
def test_a_malformed_package_name_is_refused_before_asking(
    server_engine: OpaServerEngine, package: str
) -> None:
    assert_engine_refusal(server_engine.decide(package, ACCESS_BASE), "not a dotted Rego name")


@pytest.mark.parametrize(
    "document",
    [
        {"today": dt.date(2025, 6, 1)},
        {"x": float("nan")},
        {"x": {1, 2}},
        ["not", "a", "mapping"],
    ],
    ids=["date", "nan", "set", "list"],
)
def test_an_input_that_is_not_plain_json_is_refused_before_asking(
    server_engine: OpaServerEngine, document: object
) -> None:
    decision = server_engine.decide(ACCESS, document)  # type: ignore[arg-type]
    assert_engine_refusal(decision, "sde.access: the input is not")


def test_decisions_from_several_threads_at_once(server_engine: OpaServerEngine) -> None:
    refused = with_path(ACCESS_BASE, "person/accredited_until", "2025-05-31")
    jobs = [ACCESS_BASE, refused] * 100
    with ThreadPoolExecutor(max_workers=4) as pool:
        decisions = list(pool.map(lambda d: server_engine.decide(ACCESS, d), jobs))
    assert decisions[0::2] == [Decision(allow=True)] * 100
    assert (
        decisions[1::2]
        == [Decision(False, ("the accreditation of person r-ada expired on 2025-05-31",))] * 100
    )


# --- the server down, slow, or answering nonsense -------------------------------------


def test_nothing_listening_refuses_to_start_with_a_clear_reason() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        OpaServerEngine(f"http://127.0.0.1:{port}", timeout_s=0.3, retries=2, backoff_s=0.05)
    assert time.monotonic() - started < 2
    assert str(refused.value) == (
        f"cannot start the OPA policy engine: the OPA server at 127.0.0.1:{port} "
        "could not be reached (connection refused or dropped) (3 attempts)"
    )


def test_a_server_that_drops_connections_gives_refusals(front: Front) -> None:
    engine = fast_engine(front)
    assert engine.decide(ACCESS, ACCESS_BASE).allow
    front.mode = "drop"  # takes the connection and closes it without answering
    before = front.posts()
    assert_engine_refusal(
        engine.decide(ACCESS, MARKED_INPUT),
        "sde.access: the OPA server at 127.0.0.1:",
        "could not be reached (connection refused or dropped) (3 attempts)",
    )
    assert front.posts() - before == 3  # retried, and bounded
    engine.close()


def test_a_server_that_is_gone_gives_refusals(tmp_path: Path) -> None:
    """A second OPA server, stopped after the engine started: connection refused."""
    revision = policy_bundle_hash(POLICIES)
    with running_opa(POLICIES, tmp_path / "opa", revision=revision) as server:
        engine = OpaServerEngine(server.url, timeout_s=0.3, retries=1, backoff_s=0.05)
        assert engine.bundle_hash == revision  # adopted from the server
        assert engine.decide(ACCESS, ACCESS_BASE).allow
    started = time.monotonic()
    decision = engine.decide(ACCESS, MARKED_INPUT)
    assert time.monotonic() - started < 1.5
    assert_engine_refusal(decision, "could not be reached", "(2 attempts)")


def test_a_server_that_never_answers_is_a_refusal_within_the_time_out(front: Front) -> None:
    engine = fast_engine(front, timeout_s=0.3, retries=2, backoff_s=0.05)
    front.mode = "hang"
    before = front.posts()
    started = time.monotonic()
    decision = engine.decide(ACCESS, MARKED_INPUT)
    elapsed = time.monotonic() - started
    assert_engine_refusal(
        decision,
        f"sde.access: the OPA server at {front.url.removeprefix('http://')} did not answer "
        "within 0.3 s (3 attempts)",
    )
    # three attempts of 0.3 s and back-offs of 0.05 s and 0.1 s
    assert 0.9 <= elapsed < 0.9 + 0.15 + 1.0, elapsed  # slack for a busy machine
    assert front.posts() - before == 3
    engine.close()


def test_a_server_that_takes_the_connection_and_never_answers_cannot_start() -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ConfigError, match=r"did not answer within 0\.2 s \(2 attempts\)"):
            OpaServerEngine(f"http://127.0.0.1:{port}", timeout_s=0.2, retries=1, backoff_s=0)
        assert time.monotonic() - started < 0.4 + 1.0


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, b'{"code": "internal_error", "message": "eval_builtin_error"}'),
        (400, b'{"code": "invalid_parameter"}'),
        (404, b"not found"),
        (503, b""),
    ],
)
def test_an_error_status_is_a_refusal_and_is_not_retried(
    front: Front, status: int, body: bytes
) -> None:
    engine = fast_engine(front)
    front.mode, front.reply = "reply", (status, body)
    before = front.posts()
    assert_engine_refusal(
        engine.decide(ACCESS, MARKED_INPUT), f"answered HTTP {status}", "sde.access"
    )
    assert front.posts() - before == 1
    engine.close()


def with_provenance(document: dict[str, object], *revisions: str) -> bytes:
    """An OPA answer: ``document`` with provenance naming bundles of ``revisions``
    (default: the bundle the test server runs)."""
    names = revisions or (policy_bundle_hash(POLICIES),)
    bundles = {f"b{number}.tar.gz": {"revision": r} for number, r in enumerate(names)}
    return json.dumps(
        {"provenance": {"version": "1.22.2", "bundles": bundles}, **document}
    ).encode()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>busy</html>", "sent an unreadable answer"),
        (b'{"result": {"allow": tru', "sent an unreadable answer"),
        (b"[]", "not a JSON object"),
        (with_provenance({}), "the decision is undefined"),
        (with_provenance({"result": [True]}), "not a document"),
        (with_provenance({"result": {"allow": True}}), "allow or deny is undefined"),
        (with_provenance({"result": {"deny": []}}), "allow or deny is undefined"),
        (with_provenance({"result": {"allow": "true", "deny": []}}), "allow is not a boolean"),
        (with_provenance({"result": {"allow": 1, "deny": []}}), "allow is not a boolean"),
        (with_provenance({"result": {"allow": True, "deny": {}}}), "deny is not a set"),
        (with_provenance({"result": {"allow": False, "deny": [7]}}), "deny is not a set"),
        (with_provenance({"result": {"allow": True, "deny": ["no"]}}), "allow together with"),
        # the answer must say which bundle decided, and it must be the one checked
        (b'{"result": {"allow": true, "deny": []}}', "does not name the one policy bundle"),
        (
            with_provenance({"result": {"allow": True, "deny": []}}, "0" * 64, "1" * 64),
            "does not name the one policy bundle",
        ),
        (
            with_provenance({"result": {"allow": True, "deny": []}}, "0" * 64),
            f"decided with policy bundle {'0' * 64}, not {policy_bundle_hash(POLICIES)}",
        ),
    ],
)
def test_a_malformed_answer_is_a_refusal(front: Front, body: bytes, fragment: str) -> None:
    engine = fast_engine(front)
    front.mode, front.reply = "reply", (200, body)
    assert_engine_refusal(engine.decide(ACCESS, MARKED_INPUT), fragment)
    assert front.posts() >= 1
    engine.close()


def test_the_answers_of_the_front_are_read_when_well_formed(front: Front) -> None:
    """The front's canned answers reach the engine: a well-formed one decides."""
    engine = fast_engine(front)
    front.mode = "reply"
    front.reply = (200, with_provenance({"result": {"allow": False, "deny": ["canned"]}}))
    assert engine.decide(ACCESS, ACCESS_BASE) == Decision(False, ("canned",))
    engine.close()


def test_a_server_whose_bundle_changes_after_start_up_decides_nothing(
    front: Front, tmp_path: Path
) -> None:
    """The engine started on these policies; then the server behind the address runs
    others (a bundle pushed later): its answers are refused, whatever they say."""
    engine = fast_engine(front)
    assert engine.decide(ACCESS, ACCESS_BASE).allow
    folder = tmp_path / "policies"
    folder.mkdir()
    for path in POLICIES.glob("*.rego"):
        (folder / path.name).write_bytes(path.read_bytes() + b"\n# revised\n")
    revision = policy_bundle_hash(folder)
    with running_opa(folder, tmp_path / "opa", revision=revision) as other:
        front.upstream = other.url
        assert_engine_refusal(
            engine.decide(ACCESS, ACCESS_BASE),
            f"decided with policy bundle {revision}, not {engine.bundle_hash}",
        )
    engine.close()


def test_a_refusal_without_reasons_gets_one() -> None:
    decision = read_decision(ACCESS, {"result": {"allow": False, "deny": []}})
    assert decision == Decision(False, ("refused by policy sde.access without a stated reason",))
    assert not decision.is_engine_error


# --- start-up: bundle identity and the self-test --------------------------------------


def test_a_different_bundle_refuses_to_start(opa_server: OpaServer) -> None:
    other = "0" * 64
    with pytest.raises(PolicyEngineFault) as refused:
        OpaServerEngine(opa_server.url, expected_bundle_hash=other)
    assert str(refused.value) == (
        f"the OPA server at {opa_server.url.removeprefix('http://')} runs policy bundle "
        f"{opa_server.bundle_hash}, but this sde has policies {other}: refusing to start "
        "with policies that differ"
    )


@pytest.mark.parametrize(
    ("bundles", "fragment"),
    [
        (b"{}", "reports no policy bundle"),
        (b'{"result": {}}', "reports no policy bundle"),
        (b'{"code": "internal_error"}', "reports no policy bundle"),
        (
            b'{"result": {"a": {"manifest": {"revision": "%s"}}, "b": {"manifest": {}}}}'
            % (b"0" * 64),
            "runs 2 bundles",
        ),
        (b'{"result": {"b.tar.gz": {"manifest": {"revision": ""}}}}', "without a policy bundle"),
        (b'{"result": {"b.tar.gz": {"manifest": {"revision": "v1"}}}}', "without a policy bundle"),
        (b'{"result": {"b.tar.gz": {"etag": ""}}}', "without a policy bundle"),
    ],
)
def test_a_server_whose_bundle_cannot_be_identified_refuses_to_start(
    front: Front, bundles: bytes, fragment: str
) -> None:
    front.mode, front.reply = "reply", (200, bundles)
    with pytest.raises(PolicyEngineFault, match=fragment):
        OpaServerEngine(front.url, expected_bundle_hash=policy_bundle_hash(POLICIES))
    assert front.seen == [("GET", "/v1/data/system/bundles")]


def test_an_unreadable_bundle_answer_refuses_to_start(front: Front) -> None:
    front.mode, front.reply = "reply", (502, b"<html>bad gateway</html>")
    with pytest.raises(ConfigError, match="unreadable answer when asked for its bundles"):
        OpaServerEngine(front.url)


def test_a_server_with_a_wrong_policy_fails_the_self_test(tmp_path: Path) -> None:
    """A bundle whose access policy also allows an unknown action: the bundle's revision
    matches its own folder, so only the canaries can catch it."""
    folder = tmp_path / "policies"
    folder.mkdir()
    for path in POLICIES.glob("*.rego"):
        (folder / path.name).write_bytes(path.read_bytes())
    with (folder / "access.rego").open("a", encoding="utf-8") as policy:
        policy.write('\nallow if input.action == "delete"\n')
    revision = policy_bundle_hash(folder)
    with running_opa(folder, tmp_path / "opa", revision=revision) as server:
        with pytest.raises(PolicyEngineFault) as refused:
            OpaServerEngine(server.url, expected_bundle_hash=revision)
        # the same bundle starts when told there are no canaries
        OpaServerEngine(server.url, expected_bundle_hash=revision, canaries=()).close()
    message = str(refused.value)
    assert "failed its self-test and will not start" in message
    assert "sde.access canary 'unknown action'" in message


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("127.0.0.1:8181", "must start with http:// or https://"),
        ("ftp://127.0.0.1:8181", "must start with http:// or https://"),
        ("http://user:secret@127.0.0.1:8181", "user name or password"),
        ("http://127.0.0.1:8181/v1/data", "no path"),
        ("http://127.0.0.1:8181?x=1", "no path"),
        ("http://127.0.0.1:99999", "invalid port"),
        ("http://:8181", "names no host"),
    ],
)
def test_a_malformed_url_is_a_configuration_error(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as refused:
        OpaServerEngine(url)
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize(
    "options",
    [
        {"timeout_s": 0},
        {"timeout_s": float("inf")},
        {"retries": -1},
        {"retries": 11},
        {"retries": True},
        {"backoff_s": -0.1},
        {"expected_bundle_hash": "ABC"},
    ],
)
def test_invalid_engine_options_are_configuration_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        OpaServerEngine("http://127.0.0.1:1", **options)  # type: ignore[arg-type]


# --- wiring and the audit chain -------------------------------------------------------


def test_wiring_opens_the_opa_engine_the_settings_name(
    opa_server: OpaServer, tmp_path: Path
) -> None:
    home = Home(tmp_path, Settings(policy_engine="opa", extra={"opa_url": opa_server.url}))
    engine = policy_engine(home)
    assert isinstance(engine, OpaServerEngine)
    assert engine.bundle_hash == policy_bundle_hash(POLICIES)
    assert engine.decide(ACCESS, ACCESS_BASE).allow
    engine.close()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({}, "needs the server's address as opa_url"),
        ({"opa_url": ""}, "needs the server's address as opa_url"),
        ({"opa_url": 8181}, "needs the server's address as opa_url"),
        ({"opa_url": "http://127.0.0.1:1", "opa_timeout_s": "2"}, "opa_timeout_s"),
        ({"opa_url": "http://127.0.0.1:1", "opa_retries": 1.5}, "opa_retries"),
    ],
)
def test_wiring_refuses_an_incomplete_opa_configuration(
    tmp_path: Path, extra: dict[str, object], fragment: str
) -> None:
    home = Home(tmp_path, Settings(policy_engine="opa", extra=extra))
    with pytest.raises(ConfigError, match=fragment):
        policy_engine(home)


def test_wiring_refuses_a_server_running_other_policies(
    opa_server: OpaServer, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    for path in POLICIES.glob("*.rego"):
        (folder / path.name).write_bytes(path.read_bytes() + b"\n# edited\n")
    home = Home(tmp_path, Settings(policy_engine="opa", extra={"opa_url": opa_server.url}))
    with pytest.raises(PolicyEngineFault, match="refusing to start with policies that differ"):
        policy_engine(home, folder)


def test_audited_decisions_through_the_server_name_the_bundle(
    opa_server: OpaServer, tmp_path: Path
) -> None:
    home = Home(tmp_path, Settings(policy_engine="opa", extra={"opa_url": opa_server.url}))
    log = MemoryAuditLog()
    engine = policy_engine(home, audit=log, actor="r-ada")
    assert isinstance(engine, AuditedPolicyEngine)
    refused = with_path(MARKED_INPUT, "project/status", "suspended")
    assert engine.decide(ACCESS, refused).allow is False
    (event,) = log.events
    assert (event.actor, event.action) == ("r-ada", "policy.decision")
    assert event.subject == "policy:sde.access"
    assert event.details == {
        "package": "sde.access",
        "input_sha256": input_digest(refused),
        "allow": False,
        "reasons": [
            "person r-marker-7319 is not a member of project prj-1",
            "project prj-1 has status suspended, not approved",
        ],
        "engine": "opa",
        "bundle_hash": policy_bundle_hash(POLICIES),
        "engine_error": False,
    }
    assert log.verify().intact


def test_an_error_body_from_the_server_does_not_reach_the_reason(front: Front) -> None:
    """OPA's error messages can quote the input; the engine reports the status only."""
    engine = fast_engine(front)
    assert engine.decide(ACCESS, MARKED_INPUT).reasons == (
        f"person {MARKER} is not a member of project prj-1",
    )  # the marker is sent and the policy itself may name the person by id
    front.mode, front.reply = "reply", (500, json.dumps({"message": MARKER}).encode())
    assert_engine_refusal(engine.decide(ACCESS, MARKED_INPUT), "HTTP 500")
    front.reply = (200, with_provenance({"result": {"allow": MARKER, "deny": [MARKER]}}))
    assert_engine_refusal(engine.decide(ACCESS, MARKED_INPUT), "allow is not a boolean")
    engine.close()
