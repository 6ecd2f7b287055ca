"""Every policy decision in the audit chain.

:class:`AuditedPolicyEngine` wraps any ``PolicyEngine``: each ``decide`` asks the engine,
then appends one ``policy.decision`` event to the audit log before the answer is
returned::

    actor    the actor the wrapper was built for ("system" unless told)
    action   policy.decision
    subject  policy:<package>
    details  {"package": "sde.access",
              "input_sha256": "<sha256 of the canonical JSON of the input>",
              "allow": false,
              "reasons": ["person r-ada is not a member of project prj-1", ...],
              "engine": "regopy" | "opa" | <the engine's class name>,
              "bundle_hash": "<policy bundle hash>" | null,
              "engine_error": false}

The input itself is never recorded, only its digest (``sde.domain.audit.canonical_json``:
sorted keys, no whitespace, UTF-8): anyone holding the input can show it is the one
decided, and the log holds no copy of it. Policy inputs hold ids, dates and names of
datasets, columns and checks, never a patient-level value, so the digest is not there to
hide a secret (a guessable input can be confirmed by hashing guesses); it is there to keep
the log small and free of input values. ``reasons`` are the policy's deny messages, which
name rules, people, projects, datasets, columns, files and checks by their ids.

An engine that raises (the port says it never does) gives a recorded engine-error refusal.

Fail closed: if the event cannot be appended (the database is down, the details are
refused by ``check_details``, anything), the decision is a refusal,
``policy engine error: <package>: the decision could not be recorded in the audit log``,
whatever the engine said. A decision nobody can account for is not given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

from sde.domain.audit import canonical_json
from sde.domain.policy import Decision, PolicyEngine
from sde.services.ports import AuditSink

DECISION_ACTION: Final = "policy.decision"
SYSTEM_ACTOR: Final = "system"


def input_digest(input: Mapping[str, object]) -> str | None:
    """SHA-256 (hex) of the canonical JSON of ``input``; ``None`` if it is not plain JSON
    (the engine refuses such an input anyway)."""
    try:
        return hashlib.sha256(canonical_json(input)).hexdigest()
    except (TypeError, ValueError):
        return None


def engine_identity(engine: PolicyEngine) -> tuple[str, str | None]:
    """``(kind, bundle hash)`` of an engine: its ``kind`` and ``bundle_hash`` attributes
    when it has them (both sde engines do), else its class name and ``None``."""
    kind = getattr(engine, "kind", None)
    bundle_hash = getattr(engine, "bundle_hash", None)
    return (
        kind if isinstance(kind, str) and kind else type(engine).__name__,
        bundle_hash if isinstance(bundle_hash, str) else None,
    )


def decision_details(
    package: str, input: Mapping[str, object], decision: Decision, engine: PolicyEngine
) -> dict[str, object]:
    """The details of the ``policy.decision`` event for ``decision``."""
    kind, bundle_hash = engine_identity(engine)
    return {
        "package": package,
        "input_sha256": input_digest(input),
        "allow": decision.allow,
        "reasons": list(decision.reasons),
        "engine": kind,
        "bundle_hash": bundle_hash,
        "engine_error": decision.is_engine_error,
    }


class AuditedPolicyEngine:
    """A ``PolicyEngine`` that records every decision of ``engine`` in ``audit``.

    ``actor`` is who the decisions are recorded for: ``"system"``, or a person id when
    the caller builds one wrapper per person. Exposes the wrapped engine's ``kind`` and
    ``bundle_hash``.
    """

    def __init__(self, engine: PolicyEngine, audit: AuditSink, actor: str = SYSTEM_ACTOR) -> None:
        self._engine = engine
        self._audit = audit
        self._actor = actor

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def kind(self) -> str:
        return engine_identity(self._engine)[0]

    @property
    def bundle_hash(self) -> str | None:
        return engine_identity(self._engine)[1]

    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        """The engine's decision, once it is in the audit log; a refusal if it cannot be
        recorded. Never raises."""
        try:
            decision = self._engine.decide(package, input)
        except Exception as error:  # the port says never raise; if one does, refuse
            decision = Decision.engine_error(
                f"{package}: the policy engine raised {type(error).__name__}"
            )
        try:
            self._audit.record(
                self._actor,
                DECISION_ACTION,
                f"policy:{package}",
                decision_details(package, input, decision, self._engine),
            )
        except Exception as error:  # fail closed: an unrecorded decision is a refusal
            return Decision.engine_error(
                f"{package}: the decision could not be recorded in the audit log "
                f"({type(error).__name__})"
            )
        return decision
