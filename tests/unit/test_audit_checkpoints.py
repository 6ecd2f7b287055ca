"""Published checkpoints: what the chain alone cannot see (a consistent rewrite, a cut-off
end) and how each failure is reported by its position; the register's checkpoint history."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from sde.domain.audit import GENESIS_HASH, AuditEvent
from sde.errors import InputError, StateError
from sde.services.audit import (
    CheckpointSource,
    MemoryAuditLog,
    PublishedCheckpoint,
    audit_report,
    checkpoint_problem,
    checkpoints_from_bytes,
    parse_checkpoints,
)
from sde.services.register import Checkpoint, extend_history, merge_histories

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def make_log(n: int) -> MemoryAuditLog:
    clock = iter(T0 + timedelta(minutes=i) for i in range(1000))
    log = MemoryAuditLog(clock=lambda: next(clock))
    for i in range(1, n + 1):
        log.record("system", "test.step", f"thing:{i}", {"i": i})
    return log


def published(log: MemoryAuditLog, seq: int) -> PublishedCheckpoint:
    event = log.events[seq - 1]
    assert event.seq == seq
    return PublishedCheckpoint(event.seq, event.hash, event.at)


def rechain(events: list[AuditEvent]) -> list[AuditEvent]:
    """What someone rewriting the log would do: renumber and recompute every hash, so the
    chain verifies again."""
    out: list[AuditEvent] = []
    prev = GENESIS_HASH
    for seq, event in enumerate(events, start=1):
        moved = dataclasses.replace(event, seq=seq, prev_hash=prev)
        sealed = dataclasses.replace(moved, hash=moved.computed_hash())
        out.append(sealed)
        prev = sealed.hash
    return out


def report_lines(log: MemoryAuditLog, *checkpoints: PublishedCheckpoint) -> list[str]:
    report = audit_report(log, [CheckpointSource("saved.json", tuple(checkpoints))])
    return [line.text for line in report.lines]


def test_intact_log_and_its_checkpoints() -> None:
    log = make_log(5)
    report = audit_report(
        log, [CheckpointSource("saved.json", (published(log, 3), published(log, 5)))]
    )
    assert report.ok
    assert (report.chain_intact, report.checkpoints_checked, report.checkpoints_failed) == (
        True,
        2,
        0,
    )
    lines = [line.text for line in report.lines]
    assert lines[0] == "audit chain intact: 5 events"
    assert lines[2] == (
        f"checkpoint ok: event 3 matches the checkpoint published {log.events[2].at} [saved.json]"
    )
    assert lines[3].startswith("checkpoint ok: event 5 matches")
    assert lines[-1] == "summary: chain intact; 2 checkpoints checked, 2 match, 0 do not"
    assert all(line.ok for line in report.lines)


def test_no_checkpoint_is_said_so() -> None:
    log = make_log(2)
    report = audit_report(log)
    assert report.ok
    assert report.checkpoints_checked == 0
    assert report.lines[-1].text.startswith("summary: chain intact; no published checkpoint")


def test_an_empty_log_checkpoint_holds() -> None:
    log = make_log(0)
    assert checkpoint_problem(log, PublishedCheckpoint(0, GENESIS_HASH, None)) is None
    with pytest.raises(ValueError, match="genesis"):
        PublishedCheckpoint(0, "a" * 64, None)


def test_edited_event_is_named_by_the_chain_and_the_checkpoint() -> None:
    log = make_log(5)
    at3, at5 = published(log, 3), published(log, 5)
    log.events[2] = dataclasses.replace(log.events[2], subject="thing:other")
    report = audit_report(log, [CheckpointSource("saved.json", (at3, at5))])
    assert not report.ok
    lines = [line.text for line in report.lines]
    assert lines[0].startswith("audit chain broken at event 3: event 3 was edited")
    assert lines[2] == (
        f"checkpoint FAILED: event 3 was edited after the checkpoint published "
        f"{at3.published_at}: its content no longer gives the published hash [saved.json]"
    )
    # Event 5 itself is untouched: its checkpoint holds, the chain's break is what fails.
    assert lines[3].startswith("checkpoint ok: event 5 matches")
    assert (report.checkpoints_failed, report.lines[2].ok, report.lines[3].ok) == (1, False, True)
    assert lines[-1] == "summary: chain BROKEN; 2 checkpoints checked, 1 match, 1 do not"


def test_deleted_middle_event_is_named() -> None:
    log = make_log(5)
    at3 = published(log, 3)
    del log.events[2]
    lines = report_lines(log, at3)
    assert lines[0].startswith("audit chain broken at event 3: event 3 is missing")
    assert lines[2] == (
        f"checkpoint FAILED: event 3 (published in checkpoint of {at3.published_at}) is "
        "missing: it was deleted from the log, which goes on to event 5 [saved.json]"
    )


def test_consistent_rewrite_is_caught_only_by_a_checkpoint() -> None:
    log = make_log(5)
    at2, at4 = published(log, 2), published(log, 4)
    edited = dataclasses.replace(log.events[2], details={"i": 333})
    log.events = rechain([*log.events[:2], edited, *log.events[3:]])
    assert log.verify().intact  # the chain alone sees nothing
    report = audit_report(log, [CheckpointSource("saved.json", (at2, at4))])
    assert report.chain_intact
    assert not report.ok
    lines = [line.text for line in report.lines]
    assert lines[0] == "audit chain intact: 5 events"
    assert lines[2].startswith("checkpoint ok: event 2 matches")
    assert lines[3] == (
        f"checkpoint FAILED: event 4 does not match the checkpoint published "
        f"{at4.published_at}: the log was rewritten at or before event 4 [saved.json]"
    )
    assert lines[-1] == "summary: chain intact; 2 checkpoints checked, 1 match, 1 do not"


def test_consistent_deletion_in_the_middle_is_caught_by_a_checkpoint() -> None:
    log = make_log(5)
    at3, at5 = published(log, 3), published(log, 5)
    log.events = rechain([e for e in log.events if e.seq != 2])
    assert log.verify().intact
    lines = report_lines(log, at3, at5)
    assert "event 3 does not match the checkpoint published" in lines[2]
    assert "rewritten at or before event 3" in lines[2]
    assert f"event 5 (published in checkpoint of {at5.published_at}) is missing" in lines[3]
    assert "the log ends at event 4 (events deleted from the end)" in lines[3]


def test_truncation_is_caught_by_a_checkpoint() -> None:
    log = make_log(5)
    at5 = published(log, 5)
    log.events = log.events[:3]
    assert log.verify().intact
    report = audit_report(log, [CheckpointSource("saved.json", (at5,))])
    assert report.chain_intact
    assert not report.ok
    assert report.lines[2].text == (
        f"checkpoint FAILED: event 5 (published in checkpoint of {at5.published_at}) is "
        "missing: the log ends at event 3 (events deleted from the end) [saved.json]"
    )
    emptied = make_log(0)
    assert "the log ends at event 0" in (checkpoint_problem(emptied, at5) or "")


def test_each_checkpoint_is_checked_once_across_sources() -> None:
    log = make_log(3)
    at3 = published(log, 3)
    report = audit_report(
        log,
        [
            CheckpointSource("register/checkpoints.json", (published(log, 1), at3)),
            CheckpointSource("saved.json", (at3,)),
        ],
    )
    assert report.checkpoints_checked == 2
    assert report.lines[3].text.endswith("[register/checkpoints.json]")


# --- reading checkpoint files -----------------------------------------------------------

HASH_A = "a" * 64
HASH_B = "b" * 64


def test_parses_every_register_form() -> None:
    history = {
        "format": "sde-register/1",
        "checkpoint": {"head_seq": 9, "head_hash": HASH_B, "head_at": "t9", "events": 9},
        "checkpoints": [
            {"seq": 4, "hash": HASH_A, "published_at": "t4"},
            {"seq": 9, "hash": HASH_B, "published_at": "t9"},
        ],
    }
    assert parse_checkpoints(history, "h.json") == (
        PublishedCheckpoint(4, HASH_A, "t4"),
        PublishedCheckpoint(9, HASH_B, "t9"),
    )
    single = {"format": "sde-register/1", "events": 9, "head_seq": 9, "head_hash": HASH_B}
    assert parse_checkpoints(single, "c.json") == (PublishedCheckpoint(9, HASH_B, None),)
    page = {"format": "sde-register/1", "checkpoint": history["checkpoint"], "flows": []}
    assert parse_checkpoints(page, "flows.json") == (PublishedCheckpoint(9, HASH_B, "t9"),)
    content = json.dumps(history).encode()
    assert len(checkpoints_from_bytes(content, "h.json")) == 2


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ([], "not a JSON object"),
        ({"flows": []}, 'no "checkpoints"'),
        ({"checkpoints": {}}, "not a list"),
        ({"checkpoints": [{"seq": 1}]}, "checkpoint 1 has no hash"),
        ({"checkpoints": [{"seq": "1", "hash": HASH_A}]}, "whole number"),
        ({"checkpoints": [{"seq": True, "hash": HASH_A}]}, "whole number"),
        ({"checkpoints": [{"seq": 1, "hash": "ABC"}]}, "64 lower-case hex"),
        ({"head_seq": 3, "head_hash": HASH_A, "head_at": 5}, "published_at"),
    ],
)
def test_refuses_what_is_not_a_checkpoint_file(data: object, reason: str) -> None:
    with pytest.raises(InputError, match=r"saved\.json is not a register checkpoint file") as exc:
        parse_checkpoints(data, "saved.json")
    assert reason in str(exc.value)


def test_refuses_bytes_that_are_not_json() -> None:
    with pytest.raises(InputError, match="it is not JSON"):
        checkpoints_from_bytes(b"\xff<html>", "saved.json")


# --- the register's checkpoint history ---------------------------------------------------


def head(seq: int, digest: str, at: str | None = None) -> Checkpoint:
    return Checkpoint(events=seq, head_seq=seq, head_hash=digest, head_at=at or f"t{seq}")


def test_history_starts_grows_and_does_not_repeat_a_head() -> None:
    first = extend_history((), head(4, HASH_A))
    assert first == (PublishedCheckpoint(4, HASH_A, "t4"),)
    assert extend_history(first, head(4, HASH_A)) == first  # rebuilt: nothing added
    grown = extend_history(first, head(9, HASH_B))
    assert grown == (*first, PublishedCheckpoint(9, HASH_B, "t9"))
    assert extend_history((), head(0, GENESIS_HASH, at=None)) == ()


def test_history_refuses_a_head_behind_it() -> None:
    history = (PublishedCheckpoint(4, HASH_A, "t4"), PublishedCheckpoint(9, HASH_B, "t9"))
    with pytest.raises(StateError) as exc:
        extend_history(history, head(6, HASH_A))
    assert str(exc.value).startswith(
        "event 9 (published in checkpoint of t9) is missing: the log ends at event 6 "
        "(events deleted from the end)"
    )
    assert "The register was not built" in str(exc.value)


def test_history_refuses_another_hash_at_a_published_event() -> None:
    history = (PublishedCheckpoint(4, HASH_A, "t4"),)
    with pytest.raises(StateError, match=r"event 4 does not match the checkpoint published t4"):
        extend_history(history, head(4, HASH_B))


def test_history_refuses_disorder_and_conflicts() -> None:
    later, earlier = PublishedCheckpoint(9, HASH_B, "t9"), PublishedCheckpoint(4, HASH_A, "t4")
    with pytest.raises(StateError, match="out of order at entry 2"):
        extend_history((later, earlier), head(9, HASH_B))
    with pytest.raises(StateError, match="two different checkpoints were published for event 4"):
        merge_histories((earlier,), (PublishedCheckpoint(4, HASH_B, "t4"),))
    assert merge_histories((earlier,), (earlier, later)) == (earlier, later)
