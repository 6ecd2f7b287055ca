"""The OPA server engine: Rego evaluated by a real Open Policy Agent over its REST API,
through ``opa-python-client`` (import name ``opa_client``).

In a Kubernetes deployment OPA runs as a deployment or a sidecar with the policies as a
bundle built from the repository's ``policies/`` folder::

    opa build -b policies --ignore '*_test.rego' --revision <policy_bundle_hash> -o bundle.tar.gz
    opa run --server --addr 127.0.0.1:8181 -b bundle.tar.gz

Each decision is one ``POST /v1/data/<package path>?strict-builtin-errors=true&provenance=true``
with ``{"input": ...}``; the package's ``allow`` and ``deny`` are read from the answer (the
other rules of the package come back too and are ignored). Built-in errors are strict, as
in the embedded engine. The answer's provenance names the bundle that decided, and its
revision must be the bundle hash checked at start-up: a server whose bundle was replaced
since gives refusals, not decisions by unknown policies.

Start-up (the constructor) refuses to start:

- ``ConfigError`` when the URL is not ``http(s)://host[:port]`` or the server cannot be
  reached (it is asked for ``/v1/data/system/bundles``, with the same time-out and
  retries as a decision);
- ``PolicyEngineFault`` when the server does not run exactly one bundle whose revision
  (``opa build --revision``) is the expected policy bundle hash, or when a canary
  decision (``sde.domain.policy.CANARIES``) comes back wrong.

Fail closed: ``decide`` never raises and never allows by accident. A connection refused,
a time-out, an HTTP error status, an answer that is not JSON, an answer whose provenance
does not name the bundle checked at start-up, an undefined decision, a non-boolean
``allow``, a ``deny`` that is not a list of strings, or ``allow`` with deny reasons is
``Decision.engine_error(...)`` naming the package, the server and the fault, never an
input value.

What ``opa-python-client`` 3.0.0 does, and what this module does about it:

- ``OpaClient(retries=n)`` mounts a urllib3 ``Retry(total=n, backoff_factor=0.3,
  status_forcelist=(500, 502, 504))`` on its session; urllib3 never retries a ``POST``
  on a read time-out or an error status, only on connection errors, with a back-off this
  module cannot set. So the client is built with ``retries=0`` and this module retries
  itself: transport faults only (connection refused or dropped, time-outs), at most
  ``retries`` more attempts, sleeping ``backoff_s``, ``2 * backoff_s``, ... between them.
  An HTTP error status or a malformed answer is never retried. (``retries=False`` would
  let urllib3's own exceptions escape ``requests`` unwrapped; with ``retries=0`` a read
  time-out on a ``GET`` arrives as a ``ConnectionError`` wrapping ``MaxRetryError``, which
  :func:`_timed_out` recognises.)
- ``timeout`` is handed to ``requests`` unchanged. A plain number there bounds the
  connection and *each* wait for data separately, so it is given a
  ``urllib3.Timeout(total=timeout_s)``: connecting and reading share one budget per
  attempt. A server that trickles its answer a byte at a time can still stretch an
  attempt (the socket's time-out restarts with each byte); OPA does not do that, and the
  engine adds no watchdog thread for it.
- ``query_rule`` raises ``requests.HTTPError`` for an error status and
  ``requests.JSONDecodeError`` for a body that is not JSON; ``ad_hoc_query`` drops an
  empty input (``if input_data:``), which would make ``input`` undefined, so it is not
  used.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3
from opa_client import OpaClient  # type: ignore[import-untyped]
from opa_client.errors import PolicyNotFoundError  # type: ignore[import-untyped]

from sde.adapters.rego_embedded import PolicyEngineFault
from sde.domain.policy import CANARIES, Canary, Decision, canary_problem
from sde.errors import ConfigError

T = TypeVar("T")

_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# strict built-in errors, as the embedded engine; provenance names the bundle that decided
_QUERY: Final = {"strict-builtin-errors": "true", "provenance": "true"}


class _Unanswered(Exception):
    """Every attempt failed in transport; the message says how (no input values)."""


class OpaServerEngine:
    """A ``PolicyEngine`` that asks an OPA server at ``url`` (``http://127.0.0.1:8181``).

    ``expected_bundle_hash`` is ``policy_bundle_hash(<the folder the bundle was built
    from>)``; the server's bundle revision must equal it. Without it, the engine adopts
    the revision the server reports (which must be a 64-hex-digit hash). Either way
    :attr:`bundle_hash` names the policies that decide.

    Each attempt gets ``timeout_s`` seconds; a transport fault is retried up to
    ``retries`` times with back-off ``backoff_s``, ``2 * backoff_s``, ... So a dead or
    hanging server costs at most about ``timeout_s * (retries + 1) + backoff_s *
    (2 ** retries - 1)`` before the refusal. Safe to call from several threads.
    """

    kind: Final = "opa"

    def __init__(
        self,
        url: str,
        *,
        expected_bundle_hash: str | None = None,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.1,
        canaries: Iterable[Canary] = CANARIES,
    ) -> None:
        if not _seconds(timeout_s) or timeout_s <= 0:
            raise ConfigError("the OPA time-out must be a positive number of seconds")
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ConfigError("the OPA retries must be a whole number from 0 to 10")
        if not _seconds(backoff_s) or backoff_s < 0:
            raise ConfigError("the OPA back-off must be zero or a positive number of seconds")
        if expected_bundle_hash is not None and not _HEX64.match(expected_bundle_hash):
            raise ConfigError("the expected policy bundle hash must be 64 lower-case hex digits")
        host, port, ssl = _parse_url(url)
        self._where = f"{host}:{port}"
        self._timeout_s = float(timeout_s)
        self._retries = retries
        self._backoff_s = float(backoff_s)
        self._client = OpaClient(
            host=host,
            port=port,
            ssl=ssl,
            retries=0,
            timeout=urllib3.Timeout(total=self._timeout_s),
        )
        try:
            self._bundle_hash = self._check_bundle(expected_bundle_hash)
            self._self_test(tuple(canaries))
        except BaseException:
            self.close()
            raise

    @property
    def bundle_hash(self) -> str:
        """The revision of the bundle the server runs: the policy bundle hash. Every
        decision's provenance must name it."""
        return self._bundle_hash

    @property
    def server(self) -> str:
        """``host:port`` of the OPA server."""
        return self._where

    def close(self) -> None:
        """Release the HTTP connections."""
        self._client.close_connection()

    def __enter__(self) -> OpaServerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        """Ask ``package`` whether ``input`` is allowed. Never raises; fails closed."""
        try:
            return self._decide(package, input)
        except Exception as error:  # any fault is a refusal
            return Decision.engine_error(
                f"{_name(package)}: the OPA server engine failed ({type(error).__name__})"
            )

    # --- decisions -----------------------------------------------------------------------

    def _decide(self, package: str, input: Mapping[str, object]) -> Decision:
        if not isinstance(package, str) or not _PACKAGE.match(package):
            return Decision.engine_error("the policy package name is not a dotted Rego name")
        if not isinstance(input, Mapping):
            return Decision.engine_error(f"{package}: the input is not a JSON object")
        try:
            plain = json.loads(json.dumps(input, allow_nan=False))
        except (TypeError, ValueError):
            return Decision.engine_error(f"{package}: the input is not plain JSON")
        try:
            body = self._with_retries(
                lambda: self._client.query_rule(plain, package, query_params=_QUERY)
            )
        except _Unanswered as fault:
            return Decision.engine_error(f"{package}: {fault}")
        except requests.HTTPError as error:
            status = error.response.status_code if error.response is not None else "error"
            return Decision.engine_error(
                f"{package}: the OPA server at {self._where} answered HTTP {status}"
            )
        except requests.RequestException as error:  # JSONDecodeError: a body that is not JSON
            return Decision.engine_error(
                f"{package}: the OPA server at {self._where} sent an unreadable answer "
                f"({type(error).__name__})"
            )
        return read_decision(package, body, bundle_hash=self._bundle_hash)

    def _with_retries(self, call: Callable[[], T]) -> T:
        """``call()``, retried on transport faults only; ``_Unanswered`` when all fail."""
        attempts = self._retries + 1
        problem = ""
        for attempt in range(attempts):
            try:
                return call()
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,
            ) as error:
                if _timed_out(error):
                    problem = f"did not answer within {self._timeout_s:g} s"
                else:
                    problem = "could not be reached (connection refused or dropped)"
            if attempt + 1 < attempts:
                time.sleep(self._backoff_s * 2**attempt)
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        raise _Unanswered(f"the OPA server at {self._where} {problem} ({tries})")

    # --- start-up ------------------------------------------------------------------------

    def _check_bundle(self, expected: str | None) -> str:
        try:
            answer = self._with_retries(lambda: self._client.get_data("system/bundles"))
        except _Unanswered as fault:
            raise ConfigError(f"cannot start the OPA policy engine: {fault}") from None
        except PolicyNotFoundError:  # undefined, or an error status with a JSON body
            answer = {}
        except requests.RequestException as error:  # a body that is not JSON
            raise ConfigError(
                f"cannot start the OPA policy engine: the OPA server at {self._where} sent "
                f"an unreadable answer when asked for its bundles ({type(error).__name__})"
            ) from None
        bundles = answer.get("result", {}) if isinstance(answer, dict) else None
        if not isinstance(bundles, dict) or not bundles:
            raise PolicyEngineFault(
                f"the OPA server at {self._where} reports no policy bundle (or would not "
                "say), so the policies it runs cannot be identified: load them with "
                "`opa run -b <bundle>` built with `opa build --revision <policy bundle hash>`"
            )
        if len(bundles) != 1:
            raise PolicyEngineFault(
                f"the OPA server at {self._where} runs {len(bundles)} bundles; "
                "sde expects exactly one policy bundle"
            )
        (bundle,) = bundles.values()
        manifest = bundle.get("manifest") if isinstance(bundle, dict) else None
        revision = manifest.get("revision") if isinstance(manifest, dict) else None
        if not isinstance(revision, str) or not _HEX64.match(revision):
            raise PolicyEngineFault(
                f"the OPA server at {self._where} runs a bundle without a policy bundle hash "
                "as its revision (build it with `opa build --revision <policy bundle hash>`)"
            )
        if expected is not None and revision != expected:
            raise PolicyEngineFault(
                f"the OPA server at {self._where} runs policy bundle {revision}, but this sde "
                f"has policies {expected}: refusing to start with policies that differ"
            )
        return revision

    def _self_test(self, canaries: tuple[Canary, ...]) -> None:
        problems = []
        for canary in canaries:
            problem = canary_problem(canary, self.decide(canary.package, canary.input))
            if problem is not None:
                problems.append(f"{canary.package} canary {canary.name!r}: {problem}")
        if problems:
            raise PolicyEngineFault(
                f"the OPA server engine at {self._where} failed its self-test and will not "
                "start: " + " | ".join(problems)
            )


def _timed_out(error: Exception) -> bool:
    """Whether a transport fault was a time-out rather than a refused or dropped
    connection, judged by the innermost cause: ``requests`` reports a read time-out on a
    ``GET`` as a ``ConnectionError`` wrapping urllib3's ``MaxRetryError`` (even with
    retries off), and urllib3's ``NewConnectionError`` (connection refused) is a subclass
    of its ``ConnectTimeoutError``."""
    cause: BaseException = error
    for _ in range(5):
        if isinstance(cause, urllib3.exceptions.NewConnectionError):
            return False
        if isinstance(cause, urllib3.exceptions.TimeoutError):
            return True
        if isinstance(cause, urllib3.exceptions.MaxRetryError):
            inner: object = cause.reason
        else:
            inner = cause.args[0] if cause.args else None
        if not isinstance(inner, BaseException):
            break
        cause = inner
    return isinstance(error, requests.Timeout)


def read_decision(package: str, body: object, *, bundle_hash: str | None = None) -> Decision:
    """The decision in an OPA data API answer for a whole package, or an engine-error
    refusal: ``{"provenance": {"bundles": {<name>: {"revision": <hash>}}, ...},
    "result": {"allow": <bool>, "deny": [<str>, ...], ...}}``.

    With ``bundle_hash``, the answer's provenance must name exactly one bundle, of that
    revision: a server whose policies changed after start-up does not decide."""
    if not isinstance(body, dict):
        return Decision.engine_error(f"{package}: the OPA answer is not a JSON object")
    if bundle_hash is not None:
        revision = _provenance_revision(body.get("provenance"))
        if revision is None:
            return Decision.engine_error(
                f"{package}: the OPA answer does not name the one policy bundle that decided"
            )
        if revision != bundle_hash:
            return Decision.engine_error(
                f"{package}: the OPA server decided with policy bundle {revision[:64]}, "
                f"not {bundle_hash}"
            )
    if "result" not in body:
        return Decision.engine_error(
            f"{package}: the decision is undefined (is the package in the server's bundle?)"
        )
    result = body["result"]
    if not isinstance(result, dict):
        return Decision.engine_error(f"{package}: the package's result is not a document")
    if "allow" not in result or "deny" not in result:
        return Decision.engine_error(f"{package}: allow or deny is undefined")
    allow, deny = result["allow"], result["deny"]
    if not isinstance(allow, bool):
        return Decision.engine_error(f"{package}: allow is not a boolean")
    if not isinstance(deny, list) or not all(isinstance(reason, str) for reason in deny):
        return Decision.engine_error(f"{package}: deny is not a set of reasons")
    reasons = tuple(sorted(set(deny)))
    if allow and reasons:
        return Decision.engine_error(f"{package}: allow together with deny reasons")
    if not allow and not reasons:
        reasons = (f"refused by policy {package} without a stated reason",)
    return Decision(allow=allow, reasons=reasons)


def _provenance_revision(provenance: object) -> str | None:
    """The revision of the single bundle an answer's provenance names, else ``None``."""
    bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
    if not isinstance(bundles, dict) or len(bundles) != 1:
        return None
    (bundle,) = bundles.values()
    revision = bundle.get("revision") if isinstance(bundle, dict) else None
    return revision if isinstance(revision, str) else None


def _name(package: object) -> str:
    if isinstance(package, str) and _PACKAGE.match(package):
        return package
    return "(invalid package name)"


def _seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, https)`` of an ``http(s)://host[:port]`` URL, or ``ConfigError``."""
    if not isinstance(url, str):
        raise ConfigError("the OPA server URL must be text")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ConfigError("the OPA server URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("the OPA server URL must not carry a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("the OPA server URL must be http(s)://host[:port], with no path")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("the OPA server URL has an invalid port") from None
    host = parts.hostname
    if not host:
        raise ConfigError("the OPA server URL names no host")
    if ":" in host:  # an IPv6 address goes in brackets in the client's URLs
        host = f"[{host}]"
    ssl = parts.scheme == "https"
    return host, port if port is not None else (443 if ssl else 80), ssl
