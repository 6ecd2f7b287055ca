"""The audit log's hash chain: pure rules, no storage.

Every event is hashed over its content *and* the previous event's hash::

    canonical = JSON of {seq, at, actor, action, subject, details, prev_hash}
                with sorted keys, no whitespace, UTF-8 (non-ASCII kept as is)
    hash      = sha256(canonical).hexdigest()

The first event's ``prev_hash`` is :data:`GENESIS_HASH` (64 zeros) and ``seq`` runs 1..n
with no gaps. So editing an event changes its hash (detected at that event), and deleting
or reordering events breaks a ``seq`` or a ``prev_hash`` link (detected at the first event
after the damage). Removing events from the *end* leaves a shorter chain that is still
valid: compare :attr:`VerifyResult.head_hash` with a head recorded elsewhere to catch that.

``details`` holds counts, ids, names, versions and checksums: never a patient-level value
(no NHS number, name, date of birth, address, postcode, phone, free text).
:func:`check_details` refuses the obvious mistakes; it cannot prove the absence of the rest.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sde.domain import nhs_number

GENESIS_HASH = "0" * 64
MAX_DETAILS_BYTES = 64 * 1024
MAX_DETAIL_STRING = 512

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_ACTOR = 64
_MAX_SUBJECT = 200

# Keys that name a patient-level value. A detail under one of these names is refused
# whatever it holds: such a value has no place in the audit log.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {
        "address",
        "date_of_birth",
        "dob",
        "email",
        "first_name",
        "forename",
        "free_text",
        "full_name",
        "given_name",
        "nhs_number",
        "note",
        "notes",
        "patient_name",
        "phone",
        "postcode",
        "surname",
        "telephone",
    }
)


class AuditDetailsError(ValueError):
    """Audit details that must not be recorded. An internal fault: the caller built them.
    The message names the key, never the value."""


@dataclass(frozen=True)
class AuditEntry:
    """An event to append: who did what to which thing, with non-identifying details.

    ``subject`` names the thing, conventionally ``<kind>:<id>`` (``project:diabetes-1``,
    ``person:alice``, ``release:rr-0123456789ab``).
    """

    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEvent:
    """One event as stored: its place in the chain and the hash that seals it."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return event_hash(
            seq=self.seq,
            at=self.at,
            actor=self.actor,
            action=self.action,
            subject=self.subject,
            details=self.details,
            prev_hash=self.prev_hash,
        )


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking a chain.

    ``events`` counts the events checked before the first break (all of them if intact);
    ``broken_seq`` is the sequence number at which the chain breaks and ``problem`` says
    why, in words an operator can act on. ``head_hash`` is the hash of the last good event
    (``GENESIS_HASH`` for an empty log).
    """

    intact: bool
    events: int
    head_hash: str
    broken_seq: int | None = None
    problem: str | None = None


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, no NaN or infinities."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
    prev_hash: str,
) -> str:
    payload = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def format_at(moment: datetime) -> str:
    """The event time as stored: UTC, ISO 8601, microseconds (``...T12:00:00.000000+00:00``)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _check_value(key: str, value: Any, depth: int) -> None:
    if depth > 8:
        raise AuditDetailsError(f"audit detail {key!r} is nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if nhs_number.is_valid(str(value)):
            raise AuditDetailsError(f"audit detail {key!r} looks like an NHS number")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AuditDetailsError(f"audit detail {key!r} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_STRING:
            raise AuditDetailsError(
                f"audit detail {key!r} is longer than {MAX_DETAIL_STRING} characters; "
                "the audit log holds ids, counts and checksums, not text"
            )
        if nhs_number.is_valid(value):
            raise AuditDetailsError(f"audit detail {key!r} looks like an NHS number")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(key, item, depth + 1)
        return
    if isinstance(value, Mapping):
        _check_mapping(value, depth + 1, prefix=f"{key}.")
        return
    raise AuditDetailsError(
        f"audit detail {key!r} is a {type(value).__name__}; use strings, numbers, "
        "booleans, lists and mappings"
    )


def _check_mapping(details: Mapping[Any, Any], depth: int, prefix: str = "") -> None:
    for key, value in details.items():
        if not isinstance(key, str):
            raise AuditDetailsError(f"audit detail keys must be strings (under {prefix!r})")
        name = f"{prefix}{key}"
        if key.lower() in FORBIDDEN_DETAIL_KEYS:
            raise AuditDetailsError(
                f"audit detail {name!r} names a patient-level value; record counts, ids "
                "and checksums only"
            )
        _check_value(name, value, depth)


def check_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse details that cannot go in the audit log, and return them normalised to
    plain JSON (tuples become lists), exactly as they will be hashed and stored."""
    if not isinstance(details, Mapping):
        raise AuditDetailsError("audit details must be a mapping")
    _check_mapping(details, 0)
    encoded = canonical_json(details)
    if len(encoded) > MAX_DETAILS_BYTES:
        raise AuditDetailsError(
            f"audit details are {len(encoded)} bytes; the limit is {MAX_DETAILS_BYTES}"
        )
    normalised: dict[str, Any] = json.loads(encoded)
    return normalised


def check_entry(entry: AuditEntry) -> dict[str, Any]:
    """Validate an entry before it is appended; returns its normalised details."""
    if not entry.actor or len(entry.actor) > _MAX_ACTOR:
        raise AuditDetailsError(f"an audit actor must be 1 to {_MAX_ACTOR} characters")
    if not _ACTION.match(entry.action) or len(entry.action) > _MAX_ACTOR:
        raise AuditDetailsError(
            f"audit action {entry.action!r} must be dotted lower-case words (project.created)"
        )
    if not entry.subject or len(entry.subject) > _MAX_SUBJECT:
        raise AuditDetailsError(f"an audit subject must be 1 to {_MAX_SUBJECT} characters")
    return check_details(entry.details)


def next_event(entry: AuditEntry, *, seq: int, prev_hash: str, at: datetime) -> AuditEvent:
    """The event that follows ``prev_hash`` at position ``seq``, sealed with its hash."""
    if seq < 1:
        raise ValueError("audit sequence numbers start at 1")
    if not _HEX64.match(prev_hash):
        raise ValueError("prev_hash must be 64 lower-case hex characters")
    details = check_entry(entry)
    stamp = format_at(at)
    digest = event_hash(
        seq=seq,
        at=stamp,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details=details,
        prev_hash=prev_hash,
    )
    return AuditEvent(
        seq=seq,
        at=stamp,
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details=details,
        prev_hash=prev_hash,
        hash=digest,
    )


def verify_chain(events: Iterable[AuditEvent]) -> VerifyResult:
    """Walk the events in order and report the first broken link.

    - ``seq`` must run 1, 2, 3... : a gap means events were deleted, a step back means
      events were reordered or duplicated;
    - each event's hash must match its content: a mismatch means the event was edited;
    - each ``prev_hash`` must be the hash of the event before: a mismatch means the event
      before it was deleted, replaced or rewritten (with its hash recomputed).
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for event in events:
        if event.seq != expected_seq:
            if event.seq > expected_seq:
                missing = (
                    f"event {expected_seq} is missing"
                    if event.seq == expected_seq + 1
                    else f"events {expected_seq} to {event.seq - 1} are missing"
                )
                problem = f"{missing} (deleted or moved): the next event found is {event.seq}"
            else:
                problem = (
                    f"event {event.seq} appears where event {expected_seq} should be "
                    "(events reordered or duplicated)"
                )
            return VerifyResult(False, checked, prev_hash, expected_seq, problem)
        try:
            recomputed = event.computed_hash()
        except (TypeError, ValueError):
            recomputed = ""
        if recomputed != event.hash:
            return VerifyResult(
                False,
                checked,
                prev_hash,
                event.seq,
                f"event {event.seq} was edited: its hash does not match its content",
            )
        if event.prev_hash != prev_hash:
            return VerifyResult(
                False,
                checked,
                prev_hash,
                event.seq,
                f"event {event.seq} does not follow event {event.seq - 1}: its prev_hash "
                f"does not match (an event before it was deleted, replaced or rewritten)",
            )
        prev_hash = event.hash
        expected_seq += 1
        checked += 1
    return VerifyResult(True, checked, prev_hash)
