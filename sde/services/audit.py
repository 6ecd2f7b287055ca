"""Audit use cases: verify the chain and every published checkpoint, list events, and an
in-memory log for tests.

The SQL implementation is ``sde.adapters.sql.SqlAuditLog``; anything with ``verify()``,
``tail()`` and ``event()`` (:class:`AuditTrail`) will do here.

The chain alone cannot show that it was rewritten *consistently* (an event edited or deleted
and every later hash recomputed) or cut short (the newest events deleted): what is left is
still a valid chain. A **published checkpoint** (the public register publishes one at every
build, and keeps the history of them all) catches both: anyone who saved one can later check
that the log still holds event ``seq`` with hash ``hash``. :func:`audit_report` checks the
chain and then every checkpoint it is given, and names the position of each failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sde.domain.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditEvent,
    VerifyResult,
    check_entry,
    next_event,
    verify_chain,
)
from sde.errors import InputError


class AuditTrail(Protocol):
    """An audit log that can be read and verified."""

    def verify(self) -> VerifyResult: ...

    def tail(self, limit: int) -> list[AuditEvent]: ...

    def event(self, seq: int) -> AuditEvent | None:
        """The event stored at ``seq``, or None when there is none."""
        ...


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


# --- published checkpoints -----------------------------------------------------------------

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PublishedCheckpoint:
    """A head of the chain someone published: the log held event ``seq`` with hash
    ``hash``. ``published_at`` is the time of that event (so rebuilding the register from
    the same log publishes the same checkpoint, byte for byte); None when not known."""

    seq: int
    hash: str
    published_at: str | None

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError("a checkpoint's seq must be a whole number, 0 or more")
        if not isinstance(self.hash, str) or not _HEX64.match(self.hash):
            raise ValueError("a checkpoint's hash must be 64 lower-case hex characters")
        if self.published_at is not None and not isinstance(self.published_at, str):
            raise ValueError("a checkpoint's published_at must be text or null")
        if self.seq == 0 and self.hash != GENESIS_HASH:
            raise ValueError("a checkpoint of an empty log must have the genesis hash")

    @property
    def when(self) -> str:
        return self.published_at or "an unknown date"

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "published_at": self.published_at}


def _checkpoint(item: object, where: str) -> PublishedCheckpoint:
    if not isinstance(item, Mapping):
        raise ValueError(f"{where} is not an object")
    if "head_seq" in item:  # checkpoint.json, or the "checkpoint" of any register file
        keys = ("head_seq", "head_hash", "head_at")
    else:  # an entry of checkpoints.json
        keys = ("seq", "hash", "published_at")
    missing = [k for k in keys[:2] if k not in item]
    if missing:
        raise ValueError(f"{where} has no {' or '.join(missing)}")
    try:
        return PublishedCheckpoint(item[keys[0]], item[keys[1]], item.get(keys[2]))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def parse_checkpoints(data: object, source: str) -> tuple[PublishedCheckpoint, ...]:
    """The checkpoints in a register's JSON: ``checkpoints.json`` (``{"checkpoints": [...]}``,
    every checkpoint published), ``checkpoint.json`` (``head_seq``, ``head_hash``,
    ``head_at``), or any other register file (its ``checkpoint``). Raises
    :class:`~sde.errors.InputError` naming ``source`` when it is none of these."""
    try:
        if not isinstance(data, Mapping):
            raise ValueError("it is not a JSON object")
        if "checkpoints" in data:
            items = data["checkpoints"]
            if not isinstance(items, list):
                raise ValueError('"checkpoints" is not a list')
            return tuple(_checkpoint(item, f"checkpoint {i + 1}") for i, item in enumerate(items))
        if "head_seq" in data:
            return (_checkpoint(data, "the checkpoint"),)
        if "checkpoint" in data:
            return (_checkpoint(data["checkpoint"], '"checkpoint"'),)
        raise ValueError('it has no "checkpoints", "head_seq" or "checkpoint"')
    except ValueError as exc:
        raise InputError(f"{source} is not a register checkpoint file: {exc}") from None


def checkpoints_from_bytes(content: bytes, source: str) -> tuple[PublishedCheckpoint, ...]:
    """:func:`parse_checkpoints` of a file's bytes (UTF-8 JSON)."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{source} is not a register checkpoint file: it is not JSON") from None
    return parse_checkpoints(data, source)


@dataclass(frozen=True)
class CheckpointSource:
    """Checkpoints and where they were read from (a path or a URL), for the report."""

    name: str
    checkpoints: tuple[PublishedCheckpoint, ...]


def _last_seq(trail: AuditTrail) -> int:
    last = trail.tail(1)
    return last[0].seq if last else 0


def checkpoint_problem(trail: AuditTrail, checkpoint: PublishedCheckpoint) -> str | None:
    """None when the log still holds the checkpoint's event with the checkpoint's hash
    (and the event's content still gives that hash); otherwise what is wrong, naming the
    event's position."""
    seq, when = checkpoint.seq, checkpoint.when
    if seq == 0:
        return None  # an empty log: every log begins there
    event = trail.event(seq)
    if event is None:
        last = _last_seq(trail)
        if last < seq:
            return (
                f"event {seq} (published in checkpoint of {when}) is missing: the log ends "
                f"at event {last} (events deleted from the end)"
            )
        return (
            f"event {seq} (published in checkpoint of {when}) is missing: it was deleted "
            f"from the log, which goes on to event {last}"
        )
    if event.hash != checkpoint.hash:
        return (
            f"event {seq} does not match the checkpoint published {when}: the log was "
            f"rewritten at or before event {seq}"
        )
    try:
        recomputed = event.computed_hash()
    except (TypeError, ValueError):
        recomputed = ""
    if recomputed != checkpoint.hash:
        return (
            f"event {seq} was edited after the checkpoint published {when}: its content "
            "no longer gives the published hash"
        )
    return None


@dataclass(frozen=True)
class ReportLine:
    """One line of a report; ``ok`` is False when it reports a problem."""

    ok: bool
    text: str


@dataclass(frozen=True)
class AuditReport:
    """The chain's verdict, every checkpoint's, and the lines that say so."""

    chain_intact: bool
    checkpoints_checked: int
    checkpoints_failed: int
    lines: tuple[ReportLine, ...]

    @property
    def ok(self) -> bool:
        return self.chain_intact and self.checkpoints_failed == 0


def _unique(sources: Iterable[CheckpointSource]) -> list[tuple[str, PublishedCheckpoint]]:
    seen: set[tuple[int, str]] = set()
    found: list[tuple[str, PublishedCheckpoint]] = []
    for source in sources:
        for checkpoint in source.checkpoints:
            key = (checkpoint.seq, checkpoint.hash)
            if key not in seen:
                seen.add(key)
                found.append((source.name, checkpoint))
    return found


def audit_report(trail: AuditTrail, sources: Sequence[CheckpointSource] = ()) -> AuditReport:
    """Check the whole chain, then every checkpoint in ``sources`` (each (seq, hash) once,
    in the order given): one line per checkpoint, and a summary line at the end."""
    chain_ok, chain_lines = verify_report(trail)
    lines = [ReportLine(chain_ok, line) for line in chain_lines]
    failed = 0
    checkpoints = _unique(sources)
    for source, checkpoint in checkpoints:
        problem = checkpoint_problem(trail, checkpoint)
        if problem is None:
            text = (
                f"checkpoint ok: event {checkpoint.seq} matches the checkpoint published "
                f"{checkpoint.when} [{source}]"
            )
        else:
            failed += 1
            text = f"checkpoint FAILED: {problem} [{source}]"
        lines.append(ReportLine(problem is None, text))
    chain_words = "chain intact" if chain_ok else "chain BROKEN"
    if checkpoints:
        checkpoint_words = (
            f"{len(checkpoints)} checkpoints checked, {len(checkpoints) - failed} match, "
            f"{failed} do not"
        )
    else:
        checkpoint_words = (
            "no published checkpoint checked (build the register, or give --checkpoint)"
        )
    ok = chain_ok and failed == 0
    lines.append(ReportLine(ok, f"summary: {chain_words}; {checkpoint_words}"))
    return AuditReport(chain_ok, len(checkpoints), failed, tuple(lines))


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

    def event(self, seq: int) -> AuditEvent | None:
        # By the stored seq, not the list position: tests delete and edit events here.
        return next((e for e in self.events if e.seq == seq), None)
