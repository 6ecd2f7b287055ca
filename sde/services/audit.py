"""Audit use cases: verify the chain, list events, and an in-memory log for tests.

The SQL implementation is ``sde.adapters.sql.SqlAuditLog``; anything with ``verify()``
and ``tail()`` (:class:`AuditTrail`) will do here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from sde.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    VerifyResult,
    check_entry,
    next_event,
    verify_chain,
)


class AuditTrail(Protocol):
    """An audit log that can be read and verified."""

    def verify(self) -> VerifyResult: ...

    def tail(self, limit: int) -> list[AuditEvent]: ...


def verify_report(trail: AuditTrail) -> tuple[bool, list[str]]:
    """Whether the chain is intact, and the lines that say so (or where it breaks)."""
    result = trail.verify()
    if result.intact:
        return True, [
            f"audit chain intact: {result.events} events",
            f"head: {result.head_hash}",
        ]
    return False, [
        f"audit chain broken at event {result.broken_seq}: {result.problem}",
        f"events before the break: {result.events} (last good hash {result.head_hash})",
    ]


def event_line(event: AuditEvent) -> str:
    details = json.dumps(event.details, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"{event.seq:>6}  {event.at}  {event.actor}  {event.action}  {event.subject}  {details}"


def log_lines(trail: AuditTrail, limit: int) -> list[str]:
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return [event_line(e) for e in trail.tail(limit)]


class MemoryAuditLog:
    """An ``AuditSink`` and ``AuditTrail`` held in memory, with the same chain rules as
    the SQL log. For unit tests of services; nothing is persisted."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.events: list[AuditEvent] = []

    def record(self, actor: str, action: str, subject: str, details: Mapping[str, object]) -> None:
        self.append(AuditEntry(actor, action, subject, dict(details)))

    def append(self, entry: AuditEntry) -> AuditEvent:
        check_entry(entry)
        prev_hash = self.events[-1].hash if self.events else GENESIS_HASH
        event = next_event(entry, seq=len(self.events) + 1, prev_hash=prev_hash, at=self._clock())
        self.events.append(event)
        return event

    def verify(self) -> VerifyResult:
        return verify_chain(self.events)

    def tail(self, limit: int) -> list[AuditEvent]:
        return self.events[-limit:] if limit > 0 else []
