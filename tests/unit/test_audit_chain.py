"""The audit hash chain: canonical form, a fixed vector, and what verify_chain reports."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sde.domain import nhs_number
from sde.domain.audit import (
    GENESIS_HASH,
    AuditDetailsError,
    AuditEntry,
    AuditEvent,
    canonical_json,
    check_details,
    check_entry,
    event_hash,
    format_at,
    next_event,
    verify_chain,
)
from sde.services.audit import MemoryAuditLog, log_lines, verify_report

T0 = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

# A fixed vector: the canonical bytes are spelled out, and the hash is sha256 of them.
VECTOR_ENTRY = AuditEntry(
    "alice",
    "project.created",
    "project:p-1",
    {"title": "Café", "n": 3, "datasets": {"gp": ("pid", "code")}},
)
VECTOR_CANONICAL = (
    '{"action":"project.created","actor":"alice","at":"2025-01-02T03:04:05.678901+00:00",'
    '"details":{"datasets":{"gp":["pid","code"]},"n":3,"title":"Café"},'
    '"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",'
    '"seq":1,"subject":"project:p-1"}'
).encode()
VECTOR_HASH = "cf17f894795c50dcdc3a0baabc82324dc7c2e5d3b2f96f381e922bc9fada9bf5"
VECTOR_SECOND_HASH = "aa78087e04badc70ee7262052217b9603719a44cf8968192e44ca1816d6de839"


def chain(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        event = next_event(
            AuditEntry("system", "test.step", f"thing:{i}", {"i": i}),
            seq=i,
            prev_hash=prev,
            at=T0 + timedelta(seconds=i),
        )
        events.append(event)
        prev = event.hash
    return events


def test_genesis_is_64_zeros() -> None:
    assert GENESIS_HASH == "0" * 64


def test_fixed_vector_canonical_bytes_and_hash() -> None:
    event = next_event(VECTOR_ENTRY, seq=1, prev_hash=GENESIS_HASH, at=T0)
    payload = {
        "seq": 1,
        "at": event.at,
        "actor": "alice",
        "action": "project.created",
        "subject": "project:p-1",
        "details": event.details,
        "prev_hash": GENESIS_HASH,
    }
    assert canonical_json(payload) == VECTOR_CANONICAL
    assert hashlib.sha256(VECTOR_CANONICAL).hexdigest() == VECTOR_HASH
    assert event.hash == VECTOR_HASH
    assert event.at == "2025-01-02T03:04:05.678901+00:00"
    # tuples are stored as the lists they are hashed as
    assert event.details == {"title": "Café", "n": 3, "datasets": {"gp": ["pid", "code"]}}


def test_fixed_vector_second_link() -> None:
    first = next_event(VECTOR_ENTRY, seq=1, prev_hash=GENESIS_HASH, at=T0)
    second = next_event(
        AuditEntry("system", "ingest.completed", "dataset:gp", {"rows": 10}),
        seq=2,
        prev_hash=first.hash,
        at=datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC),
    )
    assert second.prev_hash == VECTOR_HASH
    assert second.hash == VECTOR_SECOND_HASH
    assert verify_chain([first, second]).intact


def test_key_order_does_not_change_the_hash() -> None:
    def digest(details: dict[str, int]) -> str:
        return event_hash(
            seq=1, at="t", actor="a", action="b.c", subject="s", details=details, prev_hash="0"
        )

    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    assert digest({"a": 1, "b": 2}) != digest({"a": 2, "b": 1})


def test_times_are_utc_with_microseconds() -> None:
    plus_one = timezone(timedelta(hours=1))
    assert format_at(datetime(2025, 6, 1, 13, 0, tzinfo=plus_one)) == (
        "2025-06-01T12:00:00.000000+00:00"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        format_at(datetime(2025, 6, 1, 12, 0))


def test_intact_chain() -> None:
    events = chain(5)
    result = verify_chain(events)
    assert result.intact
    assert result.events == 5
    assert result.head_hash == events[-1].hash
    assert result.broken_seq is None
    assert result.problem is None


def test_empty_chain_is_intact_with_genesis_head() -> None:
    result = verify_chain([])
    assert result.intact
    assert result.events == 0
    assert result.head_hash == GENESIS_HASH


def test_edited_details_detected_at_that_event() -> None:
    events = chain(5)
    events[2] = dataclasses.replace(events[2], details={"i": 999})
    result = verify_chain(events)
    assert not result.intact
    assert result.broken_seq == 3
    assert result.problem is not None
    assert "event 3 was edited" in result.problem
    assert result.events == 2
    assert result.head_hash == events[1].hash


@pytest.mark.parametrize("field", ["at", "actor", "action", "subject"])
def test_every_field_is_sealed(field: str) -> None:
    events = chain(3)
    events[1] = dataclasses.replace(events[1], **{field: "changed"})
    result = verify_chain(events)
    assert (result.intact, result.broken_seq) == (False, 2)


def test_edited_hash_detected() -> None:
    events = chain(3)
    events[1] = dataclasses.replace(events[1], hash="f" * 64)
    result = verify_chain(events)
    assert (result.intact, result.broken_seq) == (False, 2)
    assert "edited" in (result.problem or "")


def test_deleted_middle_event_detected_by_seq_gap() -> None:
    events = chain(5)
    del events[2]
    result = verify_chain(events)
    assert not result.intact
    assert result.broken_seq == 3
    assert "event 3 is missing" in (result.problem or "")
    assert result.events == 2


def test_several_deleted_events_named() -> None:
    events = chain(6)
    del events[1:4]
    result = verify_chain(events)
    assert result.broken_seq == 2
    assert "events 2 to 4 are missing" in (result.problem or "")


def test_deleted_first_event_detected() -> None:
    result = verify_chain(chain(3)[1:])
    assert (result.intact, result.broken_seq) == (False, 1)


def test_reordered_events_detected() -> None:
    events = chain(4)
    events[1], events[2] = events[2], events[1]
    result = verify_chain(events)
    assert not result.intact
    assert result.broken_seq == 2


def test_duplicated_event_detected() -> None:
    events = chain(3)
    events.insert(2, events[1])
    result = verify_chain(events)
    assert (result.intact, result.broken_seq) == (False, 3)
    assert "reordered or duplicated" in (result.problem or "")


def test_deleted_and_renumbered_without_rehash_is_an_edit() -> None:
    events = chain(4)
    del events[1]
    events[1:] = [dataclasses.replace(e, seq=e.seq - 1) for e in events[1:]]
    result = verify_chain(events)
    assert (result.intact, result.broken_seq) == (False, 2)
    assert "edited" in (result.problem or "")


def test_rewritten_event_with_recomputed_hash_breaks_the_next_link() -> None:
    events = chain(4)
    forged = dataclasses.replace(events[1], details={"i": 42})
    events[1] = dataclasses.replace(forged, hash=forged.computed_hash())
    result = verify_chain(events)
    assert not result.intact
    assert result.broken_seq == 3
    assert "prev_hash" in (result.problem or "")


def test_first_event_must_follow_genesis() -> None:
    event = next_event(AuditEntry("a", "x.y", "s"), seq=1, prev_hash="1" * 64, at=T0)
    result = verify_chain([event])
    assert (result.intact, result.broken_seq) == (False, 1)


def test_next_event_refuses_bad_positions() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        next_event(AuditEntry("a", "x.y", "s"), seq=0, prev_hash=GENESIS_HASH, at=T0)
    with pytest.raises(ValueError, match="64 lower-case hex"):
        next_event(AuditEntry("a", "x.y", "s"), seq=1, prev_hash="xyz", at=T0)


@pytest.mark.parametrize(
    "details",
    [
        {"nhs_number": "x"},
        {"outer": {"Postcode": "x"}},
        {"date_of_birth": None},
        {"patient_name": 1},
    ],
)
def test_details_refuse_patient_level_keys(details: dict[str, object]) -> None:
    with pytest.raises(AuditDetailsError, match="patient-level"):
        check_details(details)


def test_details_refuse_an_nhs_number_given_as_an_integer() -> None:
    number = nhs_number.complete("999000012")
    assert number is not None
    with pytest.raises(AuditDetailsError, match="NHS number"):
        check_details({"count": int(number)})
    check_details({"count": 12345})


def test_details_refuse_an_nhs_number_value_without_echoing_it() -> None:
    number = nhs_number.complete("999000012")  # the test range
    assert number is not None
    assert nhs_number.is_valid(number)
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    with pytest.raises(AuditDetailsError) as info:
        check_details({"ids": ["ok", spaced]})
    message = str(info.value)
    assert "NHS number" in message
    assert number not in message.replace(" ", "")


def test_details_refuse_long_text_non_json_and_nan() -> None:
    with pytest.raises(AuditDetailsError, match="longer than"):
        check_details({"comment": "x" * 600})
    with pytest.raises(AuditDetailsError, match="is a bytes"):
        check_details({"blob": b"x"})
    with pytest.raises(AuditDetailsError, match="finite"):
        check_details({"ratio": float("nan")})
    with pytest.raises(AuditDetailsError, match="bytes; the limit"):
        check_details({f"k{i}": "y" * 500 for i in range(200)})


def test_details_keep_counts_ids_and_checksums() -> None:
    details = {"rows": 1200, "checksum": "ab" * 32, "files": ["t1.csv"], "ok": True}
    assert check_details(details) == details


@pytest.mark.parametrize(
    "entry",
    [
        AuditEntry("", "x.y", "s"),
        AuditEntry("a" * 65, "x.y", "s"),
        AuditEntry("a", "Project Created", "s"),
        AuditEntry("a", "x.y", ""),
    ],
)
def test_entries_are_checked(entry: AuditEntry) -> None:
    with pytest.raises(AuditDetailsError):
        check_entry(entry)


def test_memory_log_chains_and_reports() -> None:
    clock = iter(T0 + timedelta(seconds=i) for i in range(10))
    log = MemoryAuditLog(clock=lambda: next(clock))
    log.record("alice", "project.created", "project:p-1", {"n": 1})
    log.record("bob", "project.approved", "project:p-1", {})
    assert [e.seq for e in log.events] == [1, 2]
    assert log.events[1].prev_hash == log.events[0].hash
    intact, lines = verify_report(log)
    assert intact
    assert lines[0] == "audit chain intact: 2 events"
    assert log_lines(log, 1)[0].split()[:2] == ["2", log.events[1].at]

    log.events[0] = dataclasses.replace(log.events[0], actor="mallory")
    intact, lines = verify_report(log)
    assert not intact
    assert lines[0].startswith("audit chain broken at event 1: event 1 was edited")
