"""The embedded policy engine: Rego evaluated in-process by ``regopy`` (Microsoft rego-cpp).

How it is put together (each choice measured or forced by regopy 1.5.2):

- Every non-test ``.rego`` file of the policy folder is added to one interpreter per
  package, which compiles a bundle for the single query
  ``allow := data.<package>.allow; deny := data.<package>.deny`` once, at start-up.
  A defaulted rule queried bare (``data.pkg.allow``) comes back undefined in regopy, so
  the query binds it to a variable.
- Each decision sets the input on one run interpreter and runs the package's bundle:
  about 1,200-1,700 ``sde.access`` decisions/s on one core (two entrypoint queries per
  decision: ~800/s; a query string per decision on a loaded interpreter: ~80/s). The
  interpreter is not thread-safe, so decisions are serialised by a lock.
- ``*_test.rego`` files are never loaded: they use ``with input as``, which crashes
  regopy (SIGSEGV) on partial-set rules. Policy tests run under the real OPA.
- Built-in errors are strict (an erroring built-in fails the query rather than quietly
  making a rule undefined), and the input is round-tripped through JSON first so only
  plain JSON reaches the interpreter.
- regopy writes strings into its output text without escaping them, so an input string
  holding a quote, a backslash or a control character is refused before evaluation: it
  could otherwise rewrite the answer as it is read back (a column named
  ``x"], "allow": true, ...``).

Fail closed: an evaluation error, an undefined result, a non-boolean ``allow``, a deny set
that is not a set of strings, an ``allow`` with reasons, an unknown package, an input
that is not JSON or holds text regopy cannot carry all give
``Decision(allow=False, reasons=("policy engine error: ...",))``.
At start-up the engine runs the canary decisions of ``sde.domain.policy.CANARIES`` and
raises ``PolicyEngineFault`` if any comes back wrong, or if a policy file does not compile.

Bundle identity: :func:`policy_bundle_hash` digests the policy modules a folder holds, and
``RegoEmbeddedEngine.bundle_hash`` is that digest over the very bytes the engine loaded, so
a recorded decision names the policies that made it (the OPA server engine checks the
same digest against its bundle's revision).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import regopy

import sde
from sde.domain.policy import CANARIES, Canary, Decision, canary_problem
from sde.errors import ConfigError

_PACKAGE_LINE = re.compile(
    r"^package[ \t]+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*(?:#.*)?$",
    re.MULTILINE,
)


class PolicyEngineFault(RuntimeError):
    """The embedded engine cannot be trusted to decide: a policy does not compile or a
    canary decision came back wrong. An internal fault, not a user-facing refusal."""


def default_policy_dir() -> Path:
    """The repository's top-level ``policies/`` folder."""
    path = Path(sde.__file__).resolve().parents[1] / "policies"
    if not path.is_dir():
        raise ConfigError(
            f"policy folder {path} is missing: sde needs its Rego policies "
            "(run from a checkout of the sde repository, or point the engine at them)"
        )
    return path


def policy_files(policy_dir: Path) -> list[Path]:
    """The policy modules of ``policy_dir``: every ``.rego`` file but the ``*_test.rego``."""
    return sorted(
        path
        for path in policy_dir.glob("*.rego")
        if path.is_file() and not path.name.endswith("_test.rego")
    )


def bundle_hash_of(sources: Mapping[str, bytes]) -> str:
    """The SHA-256 (hex) of policy modules given as ``{file name: content}``.

    Each module in file-name order contributes ``<name> NUL <length> NUL <content>``, so
    renaming, moving text between files, adding or removing a file all change the hash.
    """
    digest = hashlib.sha256()
    for name in sorted(sources):
        content = sources[name]
        digest.update(name.encode("utf-8") + b"\0" + str(len(content)).encode("ascii") + b"\0")
        digest.update(content)
    return digest.hexdigest()


def policy_bundle_hash(policy_dir: Path) -> str:
    """The identity of the policies in ``policy_dir``: :func:`bundle_hash_of` over its
    policy modules (every ``.rego`` file but ``*_test.rego``, as :func:`policy_files`).

    Build the OPA server's bundle from the same folder with ``--revision`` set to this
    hash; ``OpaServerEngine`` checks it at start-up.
    """
    if not policy_dir.is_dir():
        raise ConfigError(f"policy folder {policy_dir} does not exist")
    return bundle_hash_of({path.name: path.read_bytes() for path in policy_files(policy_dir)})


class RegoEmbeddedEngine:
    """A ``PolicyEngine`` over the policies in ``policy_dir``, evaluated by regopy."""

    kind: Final = "regopy"

    def __init__(self, policy_dir: Path, *, canaries: Iterable[Canary] = CANARIES) -> None:
        self._policy_dir = policy_dir
        if not policy_dir.is_dir():
            raise ConfigError(f"policy folder {policy_dir} does not exist")
        files = policy_files(policy_dir)
        if not files:
            raise ConfigError(f"policy folder {policy_dir} holds no .rego policies")
        modules: dict[str, str] = {}
        raw: dict[str, bytes] = {}
        packages: set[str] = set()
        for path in files:
            raw[path.name] = path.read_bytes()
            try:
                source = raw[path.name].decode("utf-8")
            except UnicodeDecodeError:
                raise PolicyEngineFault(f"policy {path.name} is not UTF-8 text") from None
            found = _PACKAGE_LINE.search(source)
            if found is None:
                raise PolicyEngineFault(f"policy {path.name} has no package line regopy can read")
            packages.add(found.group(1))
            modules[path.name] = source
        self._bundle_hash = bundle_hash_of(raw)
        self._lock = threading.Lock()
        # Interpreters that built the bundles are kept alive with them.
        self._builders: list[Any] = []
        self._bundles: dict[str, Any] = {}
        for package in sorted(packages):
            self._bundles[package] = self._build(package, modules)
        self._run = regopy.Interpreter()
        self._run.strict_built_in_errors = True
        self._self_test(tuple(canaries))

    @property
    def policy_dir(self) -> Path:
        return self._policy_dir

    @property
    def bundle_hash(self) -> str:
        """:func:`bundle_hash_of` the policy modules this engine loaded."""
        return self._bundle_hash

    @property
    def packages(self) -> frozenset[str]:
        """The policy packages loaded (``sde.access``, ``sde.egress``, ...)."""
        return frozenset(self._bundles)

    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        """Ask ``package`` whether ``input`` is allowed. Never raises; fails closed."""
        try:
            return self._decide(package, input)
        except Exception as error:  # any fault is a refusal
            return Decision.engine_error(f"{package}: evaluation failed ({type(error).__name__})")

    def _build(self, package: str, modules: Mapping[str, str]) -> Any:
        builder = regopy.Interpreter()
        builder.strict_built_in_errors = True
        for name, source in modules.items():
            try:
                builder.add_module(name, source)
            except regopy.RegoError as error:
                raise PolicyEngineFault(f"policy {name} does not compile: {error}") from error
        query = f"allow := data.{package}.allow; deny := data.{package}.deny"
        try:
            bundle = builder.build(query)
        except regopy.RegoError as error:
            raise PolicyEngineFault(
                f"policy package {package} does not compile: {error}"
            ) from error
        if not bundle.ok():
            raise PolicyEngineFault(f"policy package {package} does not compile")
        self._builders.append(builder)
        return bundle

    def _decide(self, package: str, input: Mapping[str, object]) -> Decision:
        bundle = self._bundles.get(package)
        if bundle is None:
            return Decision.engine_error(f"no policy package {package} is loaded")
        if not isinstance(input, Mapping):
            return Decision.engine_error(f"{package}: the input is not a JSON object")
        try:
            plain = json.loads(json.dumps(input, allow_nan=False))
        except (TypeError, ValueError):
            return Decision.engine_error(f"{package}: the input is not plain JSON")
        if not _carriable(plain):
            return Decision.engine_error(
                f"{package}: the input holds text the embedded engine cannot carry "
                "(a quote, backslash or control character)"
            )
        with self._lock:
            self._run.set_input(regopy.Input(plain))
            try:
                # regopy's Output parses its own text, and raises on an error report.
                output = self._run.query_bundle(bundle)
            except (regopy.RegoError, ValueError):
                return Decision.engine_error(f"{package}: evaluation failed")
            ok = output.ok()
            text = str(output)
        if not ok:
            return Decision.engine_error(f"{package}: evaluation failed")
        return _read_result(package, text)

    def _self_test(self, canaries: tuple[Canary, ...]) -> None:
        problems = []
        for canary in canaries:
            problem = canary_problem(canary, self.decide(canary.package, canary.input))
            if problem is not None:
                problems.append(f"{canary.package} canary {canary.name!r}: {problem}")
        if problems:
            raise PolicyEngineFault(
                "the embedded policy engine failed its self-test and will not start: "
                + " | ".join(problems)
            )


_UNCARRIABLE = re.compile(r'["\\\x00-\x1f\x7f]')


def _carriable(value: object) -> bool:
    """Whether every string in ``value`` (keys included) survives regopy's output text.

    regopy 1.5.2 writes strings into its JSON output without escaping them, and cuts them
    at a NUL: a quote, a backslash or a control character would make the output unreadable
    or, worse, read as something else. No id, name, date or checksum holds one.
    """
    if isinstance(value, str):
        return _UNCARRIABLE.search(value) is None
    if isinstance(value, dict):
        return all(_carriable(key) and _carriable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_carriable(item) for item in value)
    return True


def _read_result(package: str, text: str) -> Decision:
    """The decision in regopy's output text, or an engine-error refusal."""
    if text == "undefined":
        return Decision.engine_error(f"{package}: the decision is undefined")
    try:
        result = json.loads(text)
    except ValueError:
        return Decision.engine_error(f"{package}: unreadable engine output")
    bindings = result.get("bindings") if isinstance(result, dict) else None
    if not isinstance(bindings, dict) or set(bindings) != {"allow", "deny"}:
        return Decision.engine_error(f"{package}: allow or deny is undefined")
    allow, deny = bindings["allow"], bindings["deny"]
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
