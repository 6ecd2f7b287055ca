"""Every decision in the audit chain: ``AuditedPolicyEngine`` over an engine that answers
what it is told, and the in-memory audit log (same chain rules as the SQL one)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping

import pytest

from sde.domain.audit import AuditDetailsError
from sde.domain.policy import ACCESS, Decision, PolicyEngine
from sde.services.audit import MemoryAuditLog
from sde.services.decisions import (
    DECISION_ACTION,
    AuditedPolicyEngine,
    decision_details,
    engine_identity,
    input_digest,
)

BUNDLE = "ab" * 32
MARKER = "r-marker-5521"
INPUT: dict[str, object] = {
    "action": "open_workspace",
    "person": {"id": MARKER, "role": "researcher"},
    "project": {"id": "prj-1", "members": ["r-ada", MARKER]},
}


class ToldEngine:
    """Answers ``answer`` and remembers what it was asked."""

    kind = "told"
    bundle_hash = BUNDLE

    def __init__(self, answer: Decision) -> None:
        self.answer = answer
        self.asked: list[tuple[str, Mapping[str, object]]] = []

    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        self.asked.append((package, input))
        return self.answer


class BareEngine:
    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        return Decision(allow=True)


class RaisingEngine:
    def decide(self, package: str, input: Mapping[str, object]) -> Decision:
        raise RuntimeError(MARKER)


class BrokenSink:
    def record(self, actor: str, action: str, subject: str, details: Mapping[str, object]) -> None:
        raise OSError("disk full")


REFUSAL = Decision(False, ("person r-ada is not a member of project prj-1",))


def test_input_digest_is_sha256_of_canonical_json() -> None:
    canonical = b'{"a":1,"b":[true,null,"\xc3\xa9"]}'
    assert input_digest({"b": [True, None, "é"], "a": 1}) == hashlib.sha256(canonical).hexdigest()
    assert input_digest({"a": 1, "b": [True, None, "é"]}) == input_digest(
        {"b": [True, None, "é"], "a": 1}
    )
    assert input_digest({"a": 1}) != input_digest({"a": 2})


@pytest.mark.parametrize(
    "document",
    [{"today": dt.date(2025, 6, 1)}, {"x": float("nan")}, {"x": {1}}, {"x": b"bytes"}],
    ids=["date", "nan", "set", "bytes"],
)
def test_input_digest_of_an_input_that_is_not_plain_json_is_none(
    document: dict[str, object],
) -> None:
    assert input_digest(document) is None


def test_each_decision_appends_exactly_one_event() -> None:
    log = MemoryAuditLog()
    inner = ToldEngine(REFUSAL)
    engine = AuditedPolicyEngine(inner, log)
    assert engine.decide(ACCESS, INPUT) == REFUSAL
    inner.answer = Decision(allow=True)
    assert engine.decide(ACCESS, INPUT) == Decision(allow=True)
    assert [e.seq for e in log.events] == [1, 2]
    first, second = log.events
    assert (first.actor, first.action) == ("system", DECISION_ACTION)
    assert first.subject == "policy:sde.access"
    assert first.details == {
        "package": "sde.access",
        "input_sha256": hashlib.sha256(
            b'{"action":"open_workspace","person":{"id":"r-marker-5521","role":"researcher"},'
            b'"project":{"id":"prj-1","members":["r-ada","r-marker-5521"]}}'
        ).hexdigest(),
        "allow": False,
        "reasons": ["person r-ada is not a member of project prj-1"],
        "engine": "told",
        "bundle_hash": BUNDLE,
        "engine_error": False,
    }
    assert second.details["allow"] is True
    assert second.details["reasons"] == []
    assert log.verify().intact
    assert inner.asked == [(ACCESS, INPUT), (ACCESS, INPUT)]


def test_no_input_value_is_recorded() -> None:
    log = MemoryAuditLog()
    engine = AuditedPolicyEngine(ToldEngine(REFUSAL), log)
    engine.decide(ACCESS, INPUT)
    engine.decide(ACCESS, {**INPUT, "action": "read_dataset"})
    for event in log.events:
        assert MARKER not in repr(event)
        assert "open_workspace" not in repr(event)


def test_the_actor_is_the_one_given() -> None:
    log = MemoryAuditLog()
    AuditedPolicyEngine(ToldEngine(REFUSAL), log, actor="r-ada").decide(ACCESS, INPUT)
    assert log.events[0].actor == "r-ada"


def test_an_engine_error_is_recorded_as_one() -> None:
    log = MemoryAuditLog()
    error = Decision.engine_error("sde.access: evaluation failed")
    assert AuditedPolicyEngine(ToldEngine(error), log).decide(ACCESS, INPUT) == error
    assert log.events[0].details["engine_error"] is True
    assert log.events[0].details["reasons"] == [
        "policy engine error: sde.access: evaluation failed"
    ]


def test_an_engine_that_raises_gives_a_recorded_refusal() -> None:
    log = MemoryAuditLog()
    decision = AuditedPolicyEngine(RaisingEngine(), log).decide(ACCESS, INPUT)
    assert decision == Decision.engine_error("sde.access: the policy engine raised RuntimeError")
    assert log.events[0].details["allow"] is False
    assert MARKER not in repr(log.events[0])


def test_an_audit_failure_turns_an_allow_into_a_refusal() -> None:
    engine = AuditedPolicyEngine(ToldEngine(Decision(allow=True)), BrokenSink())
    decision = engine.decide(ACCESS, INPUT)
    assert decision == Decision.engine_error(
        "sde.access: the decision could not be recorded in the audit log (OSError)"
    )
    assert decision.allow is False


def test_details_the_audit_log_refuses_make_a_refusal() -> None:
    """A reason longer than the audit log accepts: the event cannot be written, so the
    decision cannot be given."""
    log = MemoryAuditLog()
    long_reason = Decision(False, ("x" * 600,))
    with pytest.raises(AuditDetailsError):
        log.record("system", DECISION_ACTION, "policy:sde.access", {"reasons": ["x" * 600]})
    decision = AuditedPolicyEngine(ToldEngine(long_reason), log).decide(ACCESS, INPUT)
    assert decision.is_engine_error
    assert "could not be recorded in the audit log (AuditDetailsError)" in decision.reasons[0]
    assert log.events == []


def test_an_engine_without_identity_is_named_by_its_class() -> None:
    bare: PolicyEngine = BareEngine()
    assert engine_identity(bare) == ("BareEngine", None)
    details = decision_details(ACCESS, {}, Decision(allow=True), bare)
    assert details["engine"] == "BareEngine"
    assert details["bundle_hash"] is None
    log = MemoryAuditLog()
    wrapped = AuditedPolicyEngine(bare, log)
    assert (wrapped.kind, wrapped.bundle_hash, wrapped.engine) == ("BareEngine", None, bare)
    assert wrapped.decide(ACCESS, {}).allow


def test_the_wrapper_shows_the_wrapped_engines_identity() -> None:
    inner = ToldEngine(REFUSAL)
    wrapped = AuditedPolicyEngine(inner, MemoryAuditLog())
    assert (wrapped.kind, wrapped.bundle_hash) == ("told", BUNDLE)
    assert engine_identity(wrapped) == ("told", BUNDLE)
